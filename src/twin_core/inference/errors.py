"""Errors of the inference stage that the HTTP layer maps to 403 and 404."""

from __future__ import annotations

from twin_core.errors import InputError


class AccessDenied(InputError):
    """The caller's API key does not allow this author (HTTP 403)."""

    kind = "forbidden"


class UnknownAuthor(InputError):
    """The request names an author the warehouse does not know (HTTP 404)."""

    kind = "unknown_author"
