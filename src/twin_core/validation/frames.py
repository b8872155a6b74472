"""Warehouse documents as one pandas DataFrame per category, with the derived columns the suites check."""

from __future__ import annotations

import json
from typing import Any

from twin_core.domain.documents import Category, RawDocument
from twin_core.domain.language import detect_language
from twin_core.stores.warehouse import Warehouse

SUITE_FREE = ["previous_reasons", "content_hash"]  # frame columns the expectation suites never see


def document_row(doc: RawDocument) -> dict[str, Any]:
    text = doc.text
    language: str | None
    if doc.category is Category.REPOSITORIES:
        language = "code"
    else:
        language = str(doc.content.get("language") or "") or detect_language(text)
    return {
        "id": doc.id,
        "link": doc.link,
        "platform": doc.platform,
        "author_id": doc.author_id or None,
        "text": text,
        "text_length": len(text.strip()),
        "content_bytes": len(json.dumps(doc.content, ensure_ascii=False).encode("utf-8")),
        "language": language or None,
        "was_quarantined": doc.quarantined,
        "previous_reasons": list(doc.quarantine_reasons),
        "content_hash": doc.content_hash,  # what was validated (not a suite column: see SUITE_FREE)
    }


def category_frame(warehouse: Warehouse, category: Category) -> Any:
    import pandas as pd

    rows = [document_row(d) for d in warehouse.iter_documents(category, include_quarantined=True)]
    columns = ["id", "link", "platform", "author_id", "text", "text_length", "content_bytes", "language"]
    return pd.DataFrame(rows, columns=[*columns, "was_quarantined", *SUITE_FREE])
