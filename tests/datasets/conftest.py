"""Dataset tests start from a feature store holding cleaned documents (the real cleaning code and the
real embedded Qdrant; no embedding needed, since datasets read only the cleaned_* collections)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

AUTHOR = "Ada Quillfeather"


def write_cleaned_docs(settings: Any, raw_docs: list[Any]) -> None:
    from twin_core.features.cleaning import clean_document
    from twin_core.features.feature_store import ensure_collections, write_cleaned
    from twin_core.stores.vectors import open_vector_store

    store = open_vector_store(settings)
    try:
        ensure_collections(store, settings.embedding_model_id, 384)
        write_cleaned(store, [clean_document(d) for d in raw_docs])
    finally:
        store.close()


@pytest.fixture
def cleaned_home(settings: Any, warehouse: Any, sample_dir: Path) -> Any:
    """A TWIN_HOME whose feature store has the sample corpus's cleaned documents."""
    from twin_core.domain.documents import Category
    from twin_core.stores.warehouse_io import import_paths

    import_paths(warehouse, [sample_dir])
    docs = [d for c in Category for d in warehouse.iter_documents(c)]
    write_cleaned_docs(settings, docs)
    return settings
