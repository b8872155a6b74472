"""The headers the gateway sets for the models behind it, never taken from clients: the author of the API
key (``AUTHOR_HEADER``) and the sticky client identity of the canary split (``CLIENT_HEADER``)."""

from __future__ import annotations

from typing import Any

AUTHOR_HEADER = "x-twin-author"  # set by the gateway middleware from the API key, never by clients
CLIENT_HEADER = "x-twin-client"  # set by the gateway: sticky client identity for the canary split


def trusted_author(headers: Any) -> str | None:
    """The author the gateway put in ``AUTHOR_HEADER`` (UTF-8 bytes, which ASGI servers hand over as
    latin-1 text), or None."""
    value = (headers or {}).get(AUTHOR_HEADER)
    if not value:
        return None
    try:
        return value.encode("latin-1").decode("utf-8")
    except (UnicodeEncodeError, UnicodeDecodeError):
        return value  # already text (an in-process call)
