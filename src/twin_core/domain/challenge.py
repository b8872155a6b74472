"""Anti-bot challenge and login-wall pages: detected at crawl time and again in validation."""

from __future__ import annotations

import re

CHALLENGE_PATTERNS = [
    r"Just a moment\.\.\.",
    r"Verify you are human",
    r"Checking your browser before accessing",
    r"cf-browser-verification",
    r"Attention Required! \| Cloudflare",
    r"Enable JavaScript and cookies to continue",
    r"Please complete the security check",
]
LOGIN_WALL_PATTERNS = [
    r"Sign in to view",
    r"Join LinkedIn",
    r"authwall",
    r"Sign in to continue reading",
    r"Please log in to continue",
    r"Member-only story",
]
BLOCKED_TEXT_PATTERNS = CHALLENGE_PATTERNS + LOGIN_WALL_PATTERNS
_CHALLENGE_RE = re.compile("|".join(CHALLENGE_PATTERNS), re.IGNORECASE)
_LOGIN_RE = re.compile("|".join(LOGIN_WALL_PATTERNS), re.IGNORECASE)


def challenge_marker(text: str) -> str | None:
    """The challenge phrase found in ``text`` (HTML or extracted text), if any."""
    match = _CHALLENGE_RE.search(text or "")
    return match.group(0) if match else None


def login_wall_marker(text: str) -> str | None:
    match = _LOGIN_RE.search(text or "")
    return match.group(0) if match else None
