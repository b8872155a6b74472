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


def check_query(query: str, max_chars: int | None = None, *, empty: str = "the search query is empty") -> None:
    """InputError for a query that cannot be searched: empty, over ``max_chars`` (the embedding model would
    silently keep only its first tokens) or not text (undecodable bytes from the shell, lone surrogates)."""
    if not isinstance(query, str) or not query.strip():
        raise InputError(empty)
    if max_chars is not None and len(query) > max_chars:
        raise InputError(f"query is {len(query)} characters; the limit is {max_chars} (TWIN_SERVE_MAX_QUERY_CHARS)")
    try:
        query.encode("utf-8")
    except UnicodeEncodeError as exc:
        # the tokenizer fails on these with a TypeError, far from the cause
        raise InputError(f"query is not valid UTF-8 text (undecodable byte at character {exc.start})") from None


def why_empty(store: Any, author: str | None = None, categories: Iterable[str | Category] | None = None) -> str:
    """Why a search found nothing, with the fix: nothing featurized yet, or nothing under the filter
    (``author``: a full name or an id, as ``search`` takes it)."""
    from twin_core.features import feature_store as fs

    author_id = author_key(author) if author else None

    if fs.count_chunks(store) == 0:
        return "the feature store holds no chunks yet: run `twin features run` first"
    if author_id and fs.count_chunks(store, author_id) == 0:
        return f"author {author!r} has no chunks in the feature store: run `twin features run` first"
    cats = ", ".join(c.value for c in _categories(categories))
    return f"no chunks{f' of author {author!r}' if author_id else ''} in {cats}"


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
    from twin_core.stores.vectors import open_vector_store

    check_query(query)
    if k < 1:
        raise InputError(f"k must be at least 1 (got {k})")
    settings = settings or get_settings()
    cats = _categories(categories)
    author_id = author_key(author) if author else None
    own_store = store is None
    store = store or open_vector_store(settings)
    try:
        return _search_open(store, query, k, author_id, cats, settings, embedder)
    finally:
        if own_store:
            store.close()


def _search_open(
    store: Any, query: str, k: int, author_id: str | None, cats: list[Category], settings: Settings, embedder: Any
) -> list[ScoredChunk]:
    from twin_core.features import feature_store as fs
    from twin_core.features.embedding_model import load_embedder

    names = fs.embedded_collections(store, cats)
    if not names:
        return []  # nothing embedded yet: no need to load the model
    embedder = embedder or load_embedder(settings)
    checked: set[str] = set()
    fs.check_models(store, names, embedder.model_id, embedder.dim, checked)  # refuse before embedding
    vector = embedder.encode([query.strip()])[0].tolist()
    model, dim = embedder.model_id, embedder.dim
    return fs.search_chunks(
        store, vector, k, model_id=model, dim=dim, author_id=author_id, categories=cats, checked=checked
    )
