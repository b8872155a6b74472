"""Custom articles: Substack, personal blogs and any other article page (the dispatcher's fallback)."""

from __future__ import annotations

from urllib.parse import urlsplit

from twin_core.domain.challenge import challenge_marker, login_wall_marker
from twin_core.domain.documents import ArticleDocument, RawDocument
from twin_core.etl.crawlers.base import BaseCrawler, CrawlContext
from twin_core.etl.errors import CrawlError
from twin_core.etl.extract import extract_article
from twin_core.settings import Settings


def article_platform(link: str, html: str) -> str:
    host = (urlsplit(link).hostname or "").lower()
    if host.endswith("substack.com") or "substackcdn.com" in html or 'content="Substack"' in html:
        return "substack"
    return "blog"


def reject_challenge(html: str, link: str) -> None:
    """An anti-bot challenge page is a failed crawl, never content."""
    marker = challenge_marker(html[:50000])
    if marker:
        raise CrawlError("challenge", f"{link} returned an anti-bot challenge page ({marker!r})")


def reject_walls(text: str, link: str) -> None:
    """Checked on the extracted text (footers of real pages mention sign-in; the article body must not)."""
    reject_challenge(text, link)
    marker = login_wall_marker(text)
    if marker:
        raise CrawlError("login_wall", f"{link} is behind a login wall ({marker!r})")


def article_document(link: str, ctx: CrawlContext, html: str, platform: str) -> ArticleDocument:
    extracted = extract_article(html, link)
    reject_walls(extracted.title + "\n" + extracted.text[:2000], link)
    return ArticleDocument(
        link=link,
        platform=platform,
        author_id=ctx.user.id,
        author_full_name=ctx.user.full_name,
        content=extracted.content(),
        published_at=extracted.published_at,
    )


class ArticleCrawler(BaseCrawler):
    name = "article"
    priority = -100  # fallback for anything no other crawler claims

    def matches(self, link: str, settings: Settings) -> bool:
        return link.startswith(("http://", "https://"))

    def crawl(self, link: str, ctx: CrawlContext) -> list[RawDocument]:
        page = ctx.http.get(link)
        html = page.text
        reject_challenge(html, link)
        return [article_document(link, ctx, html, article_platform(link, html))]
