"""Deterministic ids and content hashes: the basis of every idempotent upsert."""

from __future__ import annotations

import hashlib
import json
import uuid
from typing import Any

# A fixed namespace so that ids are stable across machines and releases.
TWIN_NAMESPACE = uuid.UUID("6f1c7d1e-8c1a-5d2b-9a51-7e0e4c1f2a10")


def _uuid(*parts: str) -> str:
    return str(uuid.uuid5(TWIN_NAMESPACE, "\x1f".join(parts)))


def normalize_full_name(full_name: str) -> str:
    return " ".join(full_name.split()).strip()


def slugify(full_name: str) -> str:
    """The author's slug in artifact paths and model refs: ``"Paul Iusztin"`` -> ``"paul-iusztin"``.

    Accents are folded to ASCII; anything else that is not a letter or digit becomes one ``-``.
    """
    import unicodedata

    folded = unicodedata.normalize("NFKD", normalize_full_name(full_name)).encode("ascii", "ignore").decode()
    slug = "-".join("".join(c if c.isalnum() else " " for c in folded.casefold()).split())
    return slug or "author"


def user_id(full_name: str) -> str:
    """Id of a user, from the case-folded, whitespace-normalized full name."""
    return _uuid("user", normalize_full_name(full_name).casefold())


def document_id(link: str) -> str:
    """Id of a raw document, from its source link."""
    return _uuid("document", link.strip())


def chunk_id(document_id_: str, chunk_index: int, chunk_hash: str) -> str:
    """Id of a chunk/point: stable for the same text at the same place of the same document."""
    return _uuid("chunk", document_id_, str(chunk_index), chunk_hash)


def content_hash(content: Any) -> str:
    """sha256 of the canonical JSON of ``content`` (key order does not matter)."""
    canonical = json.dumps(content, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()
