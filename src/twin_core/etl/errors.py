"""Per-link crawl failures. One failing link never stops the others: the runner records the reason."""

from __future__ import annotations

from collections.abc import Iterable


class CrawlError(Exception):
    """A link could not be crawled. ``reason`` is a short stable code for the run report."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message

    def __str__(self) -> str:
        return f"{self.reason}: {self.message}"


# Every reason a link fails with, in one place: temporary (a later try may succeed, so `twin etl crawl` exits
# 4 and Airflow retries the step) or permanent (the same link fails the same way: exit 3, not retried).
# ``http_<code>`` is classified by its status code below. A reason in neither set is permanent: a retry that
# cannot help only delays the failure (tests/etl/test_cli_crawl_exit_codes.py checks that every reason the
# etl package raises is listed here).
TEMPORARY_REASONS = frozenset(
    {
        "timeout",  # no answer in time (request, body, browser page load, git clone)
        "connection",  # refused, reset, unreachable host (HTTP or the browser)
        "dns",  # the host name did not resolve: a resolver hiccup as often as a typo
        "unavailable",  # the warehouse (a store) could not be reached while upserting (BackendUnavailable)
    }
)
PERMANENT_REASONS = frozenset(
    {
        # the link itself
        "invalid_url",
        "unsupported_scheme",
        "unsupported_link",
        "blocked_address",  # resolves to a private address, or local repositories are disabled
        "not_a_repository",
        "git",  # git clone failed (missing or private repository)
        "redirect_loop",
        "http_error",  # a malformed answer (a redirect without Location, an invalid request)
        # what the site answered
        "robots",
        "binary_content",
        "too_large",
        "too_complex",
        "empty",
        "challenge",
        "login_wall",
        "no_feed",
        "not_in_feed",
        # configuration of this installation
        "credentials",
        "login_failed",
        "browser_unavailable",
        "git_unavailable",
        # twin_core errors while storing a link's documents (TwinError.kind), and bugs
        "input",
        "config",
        "error",
        "unexpected",
    }
)
# HTTP status codes a retry may get past: request timeout, too early, too many requests, and every 5xx
# (a 503 or 502 of a site under maintenance or load). Every other 4xx is permanent (404, 410, 403, 401...).
TEMPORARY_HTTP_STATUSES = frozenset({408, 425, 429})


def is_temporary(reason: str) -> bool:
    """Whether a link that failed with ``reason`` may succeed when crawled again later."""
    if reason in TEMPORARY_REASONS:
        return True
    code = reason.removeprefix("http_")
    if reason.startswith("http_") and code.isdigit():
        return int(code) >= 500 or int(code) in TEMPORARY_HTTP_STATUSES
    return False


def all_temporary(reasons: Iterable[str]) -> bool:
    """True when there is at least one reason and every one is temporary: a retry of the run may succeed."""
    reasons = list(reasons)
    return bool(reasons) and all(is_temporary(r) for r in reasons)
