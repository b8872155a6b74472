"""Which model version answers a request: the author's production (or the base model), or the
canary for a ``canary_percent`` share of the traffic.

The split is a pure function of (split key, author, canary version), and no state is kept. The split
key (``split_key``) is the explicit client id (``x-twin-client-id``) when the caller sent one: that
client always gets the same version while a canary runs, a new canary draws a new sample of clients.
Without one it is the request id: each request is drawn on its own, so a single API key (the default,
one per author) still sends about P % of its requests to the canary instead of 0 % or 100 %.
"""

from __future__ import annotations

import hashlib
from typing import Literal

BUCKETS = 10_000  # percent resolution 0.01

Stage = Literal["base", "production", "canary"]


def bucket(client_id: str, author_slug: str, canary_ref: str) -> int:
    """A stable bucket in [0, BUCKETS) for this client, author and canary version."""
    digest = hashlib.sha256(f"{author_slug}\x00{canary_ref}\x00{client_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big") % BUCKETS


def goes_to_canary(client_id: str, author_slug: str, canary_ref: str | None, canary_percent: float | None) -> bool:
    """True for about ``canary_percent`` % of clients, always the same ones for a given canary."""
    if not canary_ref or not canary_percent or canary_percent <= 0:
        return False
    if canary_percent >= 100:
        return True
    return bucket(client_id, author_slug, canary_ref) < canary_percent * BUCKETS / 100


def split_key(client_id: str, request_id: str) -> str:
    """Sticky (the client) only for an explicit client id; otherwise per request."""
    return client_id if client_id.startswith("id:") else f"req:{request_id}"


def client_id_of(api_key: str | None, client_header: str | None, remote: str | None) -> str:
    """The sticky identity of a client: its ``x-twin-client-id`` header, else a digest of its API key,
    else its address. Keys are never kept in clear."""
    if client_header:
        return f"id:{client_header.strip()[:200]}"
    if api_key:
        return "key:" + hashlib.sha256(api_key.encode()).hexdigest()[:32]
    return f"addr:{remote or 'unknown'}"
