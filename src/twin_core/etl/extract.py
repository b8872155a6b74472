"""Article extraction with newspaper4k, fed with HTML we fetched ourselves (so our etiquette applies)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime

from twin_core.domain.language import detect_language
from twin_core.etl.errors import CrawlError

# Page furniture removed before extraction: navigation, share buttons, subscribe widgets, comments.
_FURNITURE_TAGS = ("nav", "header", "footer", "aside", "form", "script", "style", "noscript", "button", "svg")
_FURNITURE_RE = re.compile(
    r"(^|[\s_-])(nav|navbar|menu|share|sharing|social|subscribe|subscription|newsletter|signup|paywall|"
    r"related|recommend|comments?|cookie|banner|footer|sidebar|promo|byline-share)([\s_-]|$)",
    re.IGNORECASE,
)
# newspaper4k's body scorer is quadratic in the number of sibling elements (its parsers.get_level calls
# lxml getpath, which scans every sibling, once per candidate): 50,000 <p> take ~40 s and a 4.8 MB page
# of them minutes, within the byte limit. Long real articles stay in the low thousands after the
# furniture is removed, and 20,000 flat paragraphs still extract in ~10 s on a 2-core box; beyond that
# the page is refused with a clear reason rather than tying up a crawl worker.
MAX_ELEMENTS = 20_000


@dataclass(frozen=True)
class Extracted:
    title: str
    subtitle: str
    text: str
    authors: list[str]
    published_at: datetime | None
    language: str | None
    html_lang: str

    def content(self) -> dict[str, object]:
        """The standardized article content (the Handbook's keys, plus authors)."""
        return {
            "Title": self.title,
            "Subtitle": self.subtitle,
            "Content": self.text,
            "language": self.language or "",
            "authors": self.authors,
        }


def _clean(html: str) -> tuple[str, int]:
    """The page without its furniture (navigation/share/subscribe/comment blocks, so they never reach the
    article text), and how many elements are left for newspaper4k to score."""
    import lxml.html

    try:
        doc = lxml.html.document_fromstring(html)
    except Exception:  # lxml raises ParserError on empty documents
        return html, 0
    for el in list(doc.iter(*_FURNITURE_TAGS)):
        if el.getparent() is not None:
            el.drop_tree()
    for el in list(doc.iter()):
        if not isinstance(el.tag, str) or el.getparent() is None or el.tag in ("html", "body", "article", "main"):
            continue
        marker = f"{el.get('class', '')} {el.get('id', '')} {el.get('role', '')}"
        if marker.strip() and _FURNITURE_RE.search(marker):
            el.drop_tree()
    elements = sum(1 for el in doc.iter() if isinstance(el.tag, str))  # comments and PIs are not scored
    return lxml.html.tostring(doc, encoding="unicode"), elements


def code_blocks(html: str) -> list[str]:
    """The text of every ``<pre>`` block, line breaks and indentation as written."""
    import lxml.html

    try:
        doc = lxml.html.document_fromstring(html)
    except Exception:
        return []
    return [code.strip("\n") for code in (el.text_content() for el in doc.iter("pre")) if code.strip()]


def restore_code(text: str, blocks: list[str]) -> str:
    """Put each code block back, as a fenced block with its lines, where newspaper4k flattened it.

    newspaper joins a ``<pre>``'s lines into one; the block is found by its tokens in order (whatever
    whitespace newspaper left between them), so prose is never touched."""
    for code in blocks:
        tokens = code.split()
        match = re.search(r"\s*".join(re.escape(t) for t in tokens), text) if tokens else None
        if match:
            text = text[: match.start()] + f"```\n{code}\n```" + text[match.end() :]
    return text


def extract_article(html: str, url: str) -> Extracted:
    from newspaper import Article, Config

    if not html.strip():
        raise CrawlError("empty", f"{url} returned an empty page")
    cfg = Config()
    cfg.fetch_images = False
    cfg.follow_meta_refresh = False  # it would fetch outside our HTTP client
    cfg.memorize_articles = False
    cfg.max_text = 2_000_000
    cleaned_html, elements = _clean(html)
    if elements > MAX_ELEMENTS:
        raise CrawlError(
            "too_complex",
            f"{url} has {elements:,} HTML elements after removing page furniture (limit {MAX_ELEMENTS:,}); "
            "too many to extract an article from in bounded time",
        )
    article = Article(url, config=cfg)
    article.download(input_html=cleaned_html)
    article.parse()
    text = restore_code((article.text or "").strip(), code_blocks(cleaned_html))
    if not text:
        raise CrawlError("empty", f"no article text found at {url}")
    subtitle = (article.meta_description or "").strip()
    if subtitle and text.startswith(subtitle):
        subtitle = ""  # newspaper falls back to the first paragraph; that is not a subtitle
    published = article.publish_date
    if published is not None and published.tzinfo is not None:
        published = published.replace(microsecond=0)
    return Extracted(
        title=(article.title or "").strip(),
        subtitle=subtitle,
        text=text,
        authors=list(article.authors or []),
        published_at=published,
        language=detect_language(text) or (article.meta_lang or None),
        html_lang=article.meta_lang or "",
    )
