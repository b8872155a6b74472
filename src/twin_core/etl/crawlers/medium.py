"""Medium: the article page with newspaper4k, else the author's RSS feed, else a headless browser.

Medium sits behind Cloudflare, which often answers bots with "Just a moment... Verify you are human".
Such a page is detected at every step and reported as a failed crawl; it is never stored.
"""

from __future__ import annotations

import html as html_lib
import logging
import re
from urllib.parse import urlsplit

from twin_core.domain.challenge import challenge_marker
from twin_core.domain.documents import RawDocument
from twin_core.etl.browser import headless_chrome, open_page
from twin_core.etl.crawlers.article import article_document, reject_challenge
from twin_core.etl.crawlers.base import BaseCrawler, CrawlContext, on_platform
from twin_core.etl.errors import CrawlError
from twin_core.etl.safety import check_target
from twin_core.settings import Settings

log = logging.getLogger(__name__)
_USER_IN_PATH = re.compile(r"/@([^/?#]+)")


def _same_article(a: str, b: str) -> bool:
    pa, pb = urlsplit(a), urlsplit(b)
    return pa.netloc.lower() == pb.netloc.lower() and pa.path.rstrip("/") == pb.path.rstrip("/")


class MediumCrawler(BaseCrawler):
    name = "medium"
    priority = 10

    def matches(self, link: str, settings: Settings) -> bool:
        return on_platform(link, "medium.com", settings.sources.medium_base_url)

    def feed_url(self, link: str, settings: Settings) -> str | None:
        parts = urlsplit(link)
        found = _USER_IN_PATH.search(parts.path)
        if found:
            return f"{settings.sources.medium_base_url.rstrip('/')}/feed/@{found.group(1)}"
        host = (parts.hostname or "").lower()
        if host.endswith(".medium.com") and host.count(".") == 2:
            return f"{parts.scheme}://{host}/feed"
        return None

    def crawl(self, link: str, ctx: CrawlContext) -> list[RawDocument]:
        errors: list[CrawlError] = []
        for attempt in (self._from_page, self._from_feed, self._from_browser):
            try:
                return [attempt(link, ctx)]
            except CrawlError as exc:
                if exc.reason in ("robots", "blocked_address", "invalid_url", "unsupported_scheme", "dns"):
                    raise  # no other route may bypass these
                log.info("medium: %s via %s failed: %s", link, attempt.__name__, exc)
                ctx.notes.append(f"{attempt.__name__.lstrip('_')}: {exc}")
                errors.append(exc)
        challenge = next((e for e in errors if e.reason == "challenge"), None)
        raise challenge or errors[-1]

    def _from_page(self, link: str, ctx: CrawlContext) -> RawDocument:
        html = ctx.http.get(link).text
        reject_challenge(html, link)
        return article_document(link, ctx, html, "medium")

    def _from_feed(self, link: str, ctx: CrawlContext) -> RawDocument:
        import feedparser  # a newspaper4k dependency

        feed_url = self.feed_url(link, ctx.settings)
        if not feed_url:
            raise CrawlError("no_feed", f"cannot derive the author's RSS feed from {link}")
        feed = feedparser.parse(ctx.http.get(feed_url).body)
        for entry in feed.entries:
            if _same_article(entry.get("link", ""), link):
                body = entry.content[0].value if entry.get("content") else entry.get("summary", "")
                title = html_lib.escape(entry.get("title", ""))
                page = (
                    f"<html><head><title>{title}</title></head>"
                    f"<body><article><h1>{title}</h1>{body}</article></body></html>"
                )
                return article_document(link, ctx, page, "medium")
        raise CrawlError("not_in_feed", f"{link} is not among the {len(feed.entries)} latest items of {feed_url}")

    def _from_browser(self, link: str, ctx: CrawlContext) -> RawDocument:
        check_target(link, ctx.settings)
        with headless_chrome(ctx.settings) as driver:
            open_page(driver, link, ctx.settings)
            html = driver.page_source
        marker = challenge_marker(html)
        if marker:
            raise CrawlError("challenge", f"{link} returned an anti-bot challenge page in the browser ({marker!r})")
        return article_document(link, ctx, html, "medium")
