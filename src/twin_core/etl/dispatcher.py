"""The dispatcher: which crawler handles a link.

Crawlers are discovered through the ``twin_core.crawlers`` entry-point group (the built-ins are
declared there in pyproject.toml), so a new source needs a package, not a change to the core. The
crawler with the highest ``priority`` whose ``matches`` accepts the link wins; the custom-article
crawler accepts every web link and comes last.
"""

from __future__ import annotations

import logging
from importlib.metadata import entry_points

from twin_core.errors import ConfigError
from twin_core.etl.crawlers.base import BaseCrawler
from twin_core.etl.errors import CrawlError
from twin_core.settings import Settings

log = logging.getLogger(__name__)

ENTRY_POINT_GROUP = "twin_core.crawlers"
# Used when the package metadata is missing (a source tree that was never pip-installed).
BUILTINS = {
    "github": "twin_core.etl.crawlers.github:GitHubCrawler",
    "medium": "twin_core.etl.crawlers.medium:MediumCrawler",
    "linkedin": "twin_core.etl.crawlers.linkedin:LinkedInCrawler",
    "article": "twin_core.etl.crawlers.article:ArticleCrawler",
}


def _load(name: str, target: str) -> type[BaseCrawler]:
    import importlib

    module, _, attr = target.partition(":")
    cls = getattr(importlib.import_module(module), attr)
    if not (isinstance(cls, type) and issubclass(cls, BaseCrawler)):
        raise ConfigError(f"crawler entry point {name!r} ({target}) is not a BaseCrawler subclass")
    return cls


class Dispatcher:
    def __init__(self, crawlers: list[BaseCrawler]) -> None:
        self.crawlers = sorted(crawlers, key=lambda c: -c.priority)

    @classmethod
    def from_entry_points(cls) -> Dispatcher:
        targets = dict(BUILTINS)
        for ep in entry_points(group=ENTRY_POINT_GROUP):
            targets[ep.name] = ep.value  # a plugin may add a source or replace a built-in
        return cls([_load(name, target)() for name, target in sorted(targets.items())])

    def names(self) -> list[str]:
        return [c.name for c in self.crawlers]

    def crawler_for(self, link: str, settings: Settings) -> BaseCrawler:
        for crawler in self.crawlers:
            if crawler.matches(link, settings):
                return crawler
        scheme = link.split("://", 1)[0] if "://" in link else ""
        if scheme:
            raise CrawlError("unsupported_scheme", f"{scheme}:// is not supported for {link!r}")
        raise CrawlError("invalid_url", f"{link!r} is not a URL or a local repository path")
