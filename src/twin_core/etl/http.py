"""Polite, bounded HTTP fetching shared by every crawler.

- timeouts on connect/read plus an overall deadline for the body (a slow drip cannot hang a run);
- retries with exponential backoff on 5xx, timeouts and connection errors, never on 4xx;
- a maximum body size, enforced while streaming (a 50 MB page is never held in memory);
- redirects followed by hand, each hop re-checked by the SSRF guard, loops detected;
- robots.txt respected (urllib.robotparser, cached per origin) and a per-domain concurrency limit;
- binary content refused; non-UTF-8 pages decoded with their declared or detected charset.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from urllib.parse import urljoin, urlsplit
from urllib.robotparser import RobotFileParser

import requests

from twin_core.etl.errors import CrawlError, is_temporary
from twin_core.etl.safety import check_target
from twin_core.settings import Settings

log = logging.getLogger(__name__)

TEXT_TYPES = (
    "text/html",
    "application/xhtml+xml",
    "text/plain",
    "text/xml",
    "application/xml",
    "application/rss+xml",
    "application/atom+xml",
)
_CHUNK = 64 * 1024


@dataclass(frozen=True)
class Page:
    url: str  # after redirects
    status: int
    content_type: str
    body: bytes
    encoding: str

    @property
    def text(self) -> str:
        return self.body.decode(self.encoding, errors="replace")


def _decode_charset(resp: requests.Response, body: bytes) -> str:
    declared = resp.encoding if "charset" in resp.headers.get("Content-Type", "").lower() else None
    if declared:
        try:
            body.decode(declared)
            return declared
        except (LookupError, UnicodeDecodeError):
            pass
    try:
        body.decode("utf-8")
        return "utf-8"
    except UnicodeDecodeError:
        from charset_normalizer import from_bytes  # a requests dependency

        best = from_bytes(body[:200_000]).best()
        return best.encoding if best else "latin-1"


class HttpClient:
    """One per crawl run; safe to share between the run's threads."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._local = threading.local()
        self._domain_locks: dict[str, threading.BoundedSemaphore] = {}
        self._robots: dict[str, RobotFileParser | CrawlError | None] = {}
        self._robots_locks: dict[str, threading.Lock] = {}
        self._guard = threading.Lock()
        self.requests_made = 0

    # -- plumbing ------------------------------------------------------------------------------
    @property
    def _session(self) -> requests.Session:
        session = getattr(self._local, "session", None)
        if session is None:
            session = requests.Session()
            session.headers["User-Agent"] = self.settings.crawl.user_agent
            session.headers["Accept"] = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.5"
            self._local.session = session
        return session

    def _domain_slot(self, url: str) -> threading.BoundedSemaphore:
        netloc = urlsplit(url).netloc.lower()
        with self._guard:
            if netloc not in self._domain_locks:
                self._domain_locks[netloc] = threading.BoundedSemaphore(self.settings.crawl.per_domain_concurrency)
            return self._domain_locks[netloc]

    # -- robots.txt ----------------------------------------------------------------------------
    def allowed_by_robots(self, url: str) -> bool:
        """Whether robots.txt lets us fetch ``url``; CrawlError when the site cannot be reached at all."""
        if not self.settings.crawl.respect_robots:
            return True
        parts = urlsplit(url)
        origin = f"{parts.scheme}://{parts.netloc}"
        with self._guard:
            origin_lock = self._robots_locks.setdefault(origin, threading.Lock())
        with origin_lock:  # one robots.txt request per origin, even with many threads
            if origin not in self._robots:
                self._robots[origin] = self._load_robots(origin)
        rules = self._robots[origin]
        if isinstance(rules, CrawlError):
            # A host that is down is reported as down (for every link of that origin, without asking again).
            raise CrawlError(rules.reason, f"{rules.message} (while checking robots.txt for {url})")
        return True if rules is None else rules.can_fetch(self.settings.crawl.user_agent, url)

    def _load_robots(self, origin: str) -> RobotFileParser | CrawlError | None:
        """None means "no rules" (robots.txt missing or 4xx); a CrawlError, a host that refuses, does not
        answer or answers a temporary error (5xx, 429): the link fails with that reason (retryable); any other
        failure disallows all (RFC 9309)."""
        robots_url = origin + "/robots.txt"
        parser = RobotFileParser(robots_url)
        try:
            page = self._fetch(robots_url, max_bytes=500_000, text_only=False)
        except CrawlError as exc:
            if exc.reason.startswith("http_4"):
                return None
            if is_temporary(exc.reason):
                # unreachable (connection, timeout, DNS), or a 5xx/429 (RFC 9309: disallowed for now): the link
                # fails with that reason, which a retry may fix, not as a robots refusal, which it would not
                return exc
            log.warning("robots.txt of %s unavailable (%s): treating the site as disallowed", origin, exc)
            parser.disallow_all = True
            return parser
        parser.parse(page.text.splitlines())
        return parser

    # -- fetching ------------------------------------------------------------------------------
    def get(self, url: str, *, robots: bool = True, max_bytes: int | None = None) -> Page:
        """Fetch ``url`` (a text page) with every rule above applied, or raise CrawlError."""
        check_target(url, self.settings)
        if robots and not self.allowed_by_robots(url):
            raise CrawlError("robots", f"robots.txt of {urlsplit(url).netloc} disallows {url}")
        return self._fetch(url, max_bytes=max_bytes or self.settings.crawl.max_bytes, text_only=True)

    def _fetch(self, url: str, *, max_bytes: int, text_only: bool) -> Page:
        seen = {url}
        current = url
        for _hop in range(self.settings.crawl.max_redirects + 1):
            resp = self._request_with_retries(current)
            try:
                if resp.is_redirect or resp.status_code in (301, 302, 303, 307, 308):
                    location = resp.headers.get("Location")
                    if not location:
                        raise CrawlError("http_error", f"redirect without Location from {current}")
                    target = urljoin(current, location)
                    if target in seen:
                        raise CrawlError("redirect_loop", f"redirect loop: {current} -> {target}")
                    check_target(target, self.settings)  # a redirect must not reach an internal host
                    seen.add(target)
                    current = target
                    continue
                return self._read(resp, current, max_bytes=max_bytes, text_only=text_only)
            finally:
                resp.close()
        raise CrawlError("redirect_loop", f"more than {self.settings.crawl.max_redirects} redirects from {url}")

    def _request_with_retries(self, url: str) -> requests.Response:
        s = self.settings
        attempts = s.crawl.max_retries + 1
        last: CrawlError | None = None
        for attempt in range(attempts):
            if attempt:
                delay = s.crawl.backoff_s * (2 ** (attempt - 1))
                log.info("retrying %s in %.2fs (%s)", url, delay, last)
                time.sleep(delay)
            try:
                with self._domain_slot(url):
                    self.requests_made += 1
                    resp = self._session.get(
                        url, timeout=(s.crawl.timeout_s, s.crawl.timeout_s), stream=True, allow_redirects=False
                    )
            except requests.Timeout:
                last = CrawlError("timeout", f"no answer from {url} within {s.crawl.timeout_s}s")
                continue
            except requests.ConnectionError as exc:
                last = CrawlError("connection", f"cannot connect to {url}: {type(exc).__name__}")
                continue
            except requests.RequestException as exc:
                raise CrawlError("http_error", f"{url}: {exc}") from None
            if resp.status_code >= 400:
                # Cloudflare-style walls answer 403/503 with a challenge page: report that, never retry it.
                marker = _challenge_in_error_body(resp)
                if marker:
                    raise CrawlError(
                        "challenge", f"{url} answered {resp.status_code} with a challenge page ({marker!r})"
                    )
            if resp.status_code >= 500:
                resp.close()
                last = CrawlError(f"http_{resp.status_code}", f"{url} answered {resp.status_code}")
                continue
            if resp.status_code >= 400:
                resp.close()
                raise CrawlError(f"http_{resp.status_code}", f"{url} answered {resp.status_code} {resp.reason}")
            return resp
        assert last is not None
        raise last

    def _read(self, resp: requests.Response, url: str, *, max_bytes: int, text_only: bool) -> Page:
        ctype = resp.headers.get("Content-Type", "").split(";", 1)[0].strip().lower()
        if text_only and ctype and ctype not in TEXT_TYPES:
            raise CrawlError("binary_content", f"{url} is {ctype}, not a text page")
        declared = resp.headers.get("Content-Length", "")
        if declared.isdigit() and int(declared) > max_bytes:
            raise CrawlError("too_large", f"{url} is {int(declared)} bytes (limit {max_bytes})")
        deadline = time.monotonic() + self.settings.crawl.timeout_s * 3
        chunks: list[bytes] = []
        size = 0
        try:
            for chunk in resp.iter_content(_CHUNK):
                size += len(chunk)
                if size > max_bytes:
                    raise CrawlError("too_large", f"{url} is larger than {max_bytes} bytes; stopped reading")
                if time.monotonic() > deadline:
                    raise CrawlError("timeout", f"{url} body took longer than {self.settings.crawl.timeout_s * 3}s")
                chunks.append(chunk)
        except requests.RequestException as exc:
            raise CrawlError("timeout", f"reading {url} failed: {type(exc).__name__}") from None
        body = b"".join(chunks)
        if text_only and b"\x00" in body[:8192]:
            raise CrawlError("binary_content", f"{url} has binary content")
        return Page(
            url=url, status=resp.status_code, content_type=ctype, body=body, encoding=_decode_charset(resp, body)
        )


def _challenge_in_error_body(resp: requests.Response, limit: int = 65_536) -> str | None:
    """The challenge phrase in the first ``limit`` bytes of an error response (the body is then closed)."""
    from twin_core.domain.challenge import challenge_marker

    try:
        head = next(resp.iter_content(limit), b"")
    except requests.RequestException:
        head = b""
    finally:
        resp.close()
    return challenge_marker(head.decode("utf-8", errors="ignore"))
