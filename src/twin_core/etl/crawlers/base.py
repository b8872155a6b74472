"""The crawler contract: a crawler says which links it handles and turns one link into raw documents."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import ClassVar
from urllib.parse import urlsplit

from twin_core.domain.documents import RawDocument, UserDocument
from twin_core.etl.http import HttpClient
from twin_core.settings import Settings


@dataclass
class CrawlContext:
    """What a crawler may use: settings, the run's polite HTTP client, and the author."""

    settings: Settings
    http: HttpClient
    user: UserDocument
    notes: list[str] = field(default_factory=list)  # non-fatal remarks for the run report
    started: float = 0.0  # perf_counter when the crawl of this link began


class BaseCrawler(ABC):
    """Subclass, set ``name``/``priority`` and implement ``matches`` and ``crawl``.

    Register a third-party crawler in your package's ``pyproject.toml``::

        [project.entry-points."twin_core.crawlers"]
        gitlab = "my_pkg.gitlab:GitLabCrawler"
    """

    name: ClassVar[str] = "base"
    # Higher wins when several crawlers match a link; the article fallback has the lowest.
    priority: ClassVar[int] = 0

    @abstractmethod
    def matches(self, link: str, settings: Settings) -> bool: ...

    @abstractmethod
    def crawl(self, link: str, ctx: CrawlContext) -> list[RawDocument]:
        """Documents found at ``link``; raise CrawlError for an expected failure."""


def on_platform(link: str, domain: str, base_url: str) -> bool:
    """True for ``domain``, its subdomains, or the configured base URL (tests point it at 127.0.0.1)."""
    host = (urlsplit(link).hostname or "").lower()
    return host == domain or host.endswith("." + domain) or link.startswith(base_url.rstrip("/") + "/")
