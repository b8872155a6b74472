"""A feature store holding cleaned documents, written with the real cleaning code and the embedded
Qdrant (no embedding model: the dataset build reads only the cleaned_* collections). Used by the
dataset tests and benchmarks/dataset_build.py."""

from __future__ import annotations

from typing import Any


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
