"""Pure functions. No I/O, no clocks, no randomness."""

from __future__ import annotations

import hashlib
import unicodedata
from typing import Iterable, Iterator


def clean_text(text: str) -> str:
    """Normalise Unicode (NFKC), then collapse all whitespace to single spaces."""
    text = unicodedata.normalize("NFKC", text)
    return " ".join(text.split())


def record_id(source: str, natural_key: str) -> str:
    """Deterministic ID: the same input always gives the same 32 hex characters."""
    digest = hashlib.sha256(f"{source}:{natural_key}".encode("utf-8")).hexdigest()
    return digest[:32]


def transform(records: Iterable[dict], source: str) -> Iterator[dict]:
    """Clean each record and give it a deterministic ID. Empty texts are dropped."""
    for record in records:
        text = clean_text(str(record.get("text", "")))
        if not text:
            continue
        key = str(record.get("key") or text)
        yield {"id": record_id(source, key), "source": source, "text": text}


def deduplicate(records: Iterable[dict]) -> list[dict]:
    """Keep the first record for each ID, preserving input order."""
    seen: set[str] = set()
    kept: list[dict] = []
    for record in records:
        if record["id"] in seen:
            continue
        seen.add(record["id"])
        kept.append(record)
    return kept
