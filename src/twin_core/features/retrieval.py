"""Vector search over the author's chunks: the retrieval primitive of the inference stage.

Importing this module has no side effect (no model, no store). ``search()`` loads the embedding model
once per process (``embedding_model.load_embedder``) and opens the vector store only if none is given;
a long-running server should pass its own ``store`` (local Qdrant allows one process per folder).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

from twin_core.domain.documents import Category
from twin_core.domain.ids import user_id
from twin_core.errors import InputError
from twin_core.features.feature_store import ScoredChunk
from twin_core.settings import Settings, get_settings

UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$", re.IGNORECASE)


def author_key(author: str) -> str:
    """An author id, from an id or a full name (ids are derived from the name, so no lookup is needed)."""
    return author if UUID.match(author.strip()) else user_id(author)


def _categories(categories: Iterable[str | Category] | None) -> list[Category]:
    if not categories:
        return list(Category)
    return [c if isinstance(c, Category) else Category.parse(c) for c in categories]


def search(
    query: str,
    k: int = 5,
    author: str | None = None,
    categories: Iterable[str | Category] | None = None,
    *,
    settings: Settings | None = None,
    store: Any = None,
    embedder: Any = None,
) -> list[ScoredChunk]:
    """The ``k`` chunks closest to ``query``, best first, across the requested categories.

    ``author`` is a full name or an author id; only that author's chunks are returned. ``categories``
    defaults to all. Raises ConfigError if a collection was embedded with another model.
    """
    from twin_core.features import feature_store as fs
    from twin_core.features.embedding_model import load_embedder
    from twin_core.stores.vectors import open_vector_store

    if not query or not query.strip():
        raise InputError("the search query is empty")
    if k < 1:
        raise InputError(f"k must be at least 1 (got {k})")
    settings = settings or get_settings()
    cats = _categories(categories)
    author_id = author_key(author) if author else None
    own_store = store is None
    store = store or open_vector_store(settings)
    try:
        names = fs.embedded_collections(store, cats)
        if not names:
            return []  # nothing embedded yet: no need to load the model
        embedder = embedder or load_embedder(settings)
        checked: set[str] = set()
        fs.check_models(store, names, embedder.model_id, embedder.dim, checked)  # refuse before embedding
        vector = embedder.encode([query.strip()])[0].tolist()
        return fs.search_chunks(
            store,
            vector,
            k,
            model_id=embedder.model_id,
            dim=embedder.dim,
            author_id=author_id,
            categories=cats,
            checked=checked,
        )
    finally:
        if own_store:
            store.close()
