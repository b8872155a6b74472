"""A RAG-ready TWIN_HOME from the sample corpus, built by the real feature pipeline: for tests and benchmarks.

Imports a Handbook-format backup into the warehouse, optionally adds a second author, Bob Marlowe, with
one secret article (to check that retrieval never crosses authors), then runs `twin features run`'s
pipeline, so the collections are exactly what production retrieval reads.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from support import SAMPLE_DIR

SECRET = "SECRET-BOB-TOKEN"  # only in Bob's article: retrieval for Ada must never return it


def build_rag_home(home: Path, models_dir: Path, extra_author_docs: bool = True, sample: Path = SAMPLE_DIR) -> Any:
    """Import the sample corpus and featurize it into ``embedded_*`` collections; returns the settings."""
    from twin_core.domain.documents import ArticleDocument
    from twin_core.features.pipeline import run_features
    from twin_core.settings import load_settings
    from twin_core.stores.warehouse import open_warehouse
    from twin_core.stores.warehouse_io import import_paths

    settings = load_settings(home=home, llm_models_dir=models_dir)
    wh = open_warehouse(settings)
    import_paths(wh, [sample])
    if extra_author_docs:
        bob, _ = wh.get_or_create_user("Bob Marlowe")
        secret = ArticleDocument(
            link="https://bob.example/secret",
            platform="blog",
            author_id=bob.id,
            author_full_name=bob.full_name,
            content={
                "Title": "Idempotency keys",
                "Content": f"Bob Marlowe's secret: {SECRET}. Idempotency keys and upserts make re-runs safe.",
            },
        )
        wh.upsert_document(secret)
    run_features(settings)  # closes its vector store: a server started later must own the folder
    return settings
