"""The feature store layout in Qdrant and the sync state that makes runs incremental.

- ``cleaned_<category>``: one payload-only point per cleaned document (id = document id).
- ``embedded_<category>``: one cosine vector per chunk (id = chunk id), payload = chunk + model id/dim.
  The collection metadata records the model too; a different model is refused.
- ``feature_state``: one payload-only point per featurized document: the raw content hash and the
  pipeline fingerprint it was featurized with. It lives next to the features on purpose: wiping the
  vector store wipes the state, so the next run rebuilds instead of trusting stale state.

Write order per document (what makes a killed run resumable with no duplicate and no missing point):
upsert new chunks -> delete that document's other chunks -> upsert the cleaned doc -> mark state done.

Reading: ``search_chunks()`` is THE retrieval over the ``embedded_*`` collections (used by
``twin rag search`` and by the RAG pipeline): model check, server-side author filter re-checked on
every hit, payload -> ``ScoredChunk`` in one place, vectors returned when asked (for MMR);
``search_chunks_batch()`` is the same for several queries (one store request per collection).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from pydantic import BaseModel, Field

from twin_core.domain.documents import Category
from twin_core.domain.features import CleanedDocument, EmbeddedChunk
from twin_core.errors import BackendUnavailable, ConfigError, TwinError
from twin_core.stores.vectors import VectorHit, VectorPoint, VectorQuery, VectorStore

STATE_COLLECTION = "feature_state"


def cleaned_collection(category: Category) -> str:
    return f"cleaned_{category.value}"


def embedded_collection(category: Category) -> str:
    return f"embedded_{category.value}"


def check_model(store: VectorStore, name: str, model_id: str, dim: int | None = None) -> None:
    """Refuse an embedded collection built with another model or dimension."""
    if not store.has_collection(name):
        return
    meta = store.collection_metadata(name)
    have_model, have_dim = meta.get("model_id"), meta.get("dim")
    if have_model is None:  # built by something else: check a point instead
        point = next(iter(store.scroll(name, batch_size=1)), None)
        if point is None:
            return
        have_model, have_dim = point.payload.get("model_id"), point.payload.get("dim")
    if have_model != model_id or (dim is not None and have_dim is not None and int(have_dim) != dim):
        want = f"{model_id} (dim {dim})" if dim is not None else model_id
        raise ConfigError(
            f"Qdrant collection {name!r} was embedded with {have_model} (dim {have_dim}) but "
            f"TWIN_EMBEDDING_MODEL_ID is {want}: set the same model, or rebuild with "
            "`twin features run --full`"
        )


def ensure_collections(store: VectorStore, model_id: str, dim: int, *, rebuild: bool = False) -> None:
    """Create every collection; with ``rebuild`` drop the embedded ones built with another model first."""
    for cat in Category:
        name = embedded_collection(cat)
        try:
            check_model(store, name, model_id, dim)
        except ConfigError:
            if not rebuild:
                raise
            store.drop_collection(name)
        store.ensure_collection(name, dim, metadata={"model_id": model_id, "dim": dim, "kind": "embedded"})
        store.ensure_collection(cleaned_collection(cat), None, metadata={"kind": "cleaned"})
    store.ensure_collection(STATE_COLLECTION, None, metadata={"kind": "feature_state"})


def read_state(store: VectorStore, author_id: str | None = None) -> dict[str, dict[str, Any]]:
    """document id -> state payload (raw_content_hash, fingerprint, category, author_id, ...)."""
    match = {"author_id": author_id} if author_id else {}
    return {p.id: dict(p.payload) for p in store.scroll(STATE_COLLECTION, batch_size=1024, **match)}


def _points(ids: Sequence[str], payloads: Sequence[dict], vectors: Sequence[Any] | None = None) -> list[VectorPoint]:
    if vectors is None:
        return [VectorPoint(i, p) for i, p in zip(ids, payloads, strict=True)]
    return [VectorPoint(i, p, list(map(float, v))) for i, p, v in zip(ids, payloads, vectors, strict=True)]


def chunk_payload(chunk: EmbeddedChunk) -> dict[str, Any]:
    payload = chunk.model_dump(mode="json", exclude={"id", "embedding"})
    payload["chunk_id"] = chunk.id
    return payload


def write_chunks(store: VectorStore, chunks: Sequence[EmbeddedChunk]) -> int:
    by_cat: dict[Category, list[EmbeddedChunk]] = {}
    for c in chunks:
        by_cat.setdefault(c.category, []).append(c)
    for cat, items in by_cat.items():
        points = _points([c.id for c in items], [chunk_payload(c) for c in items], [c.embedding for c in items])
        store.upsert(embedded_collection(cat), points)
    return len(chunks)


def delete_other_chunks(store: VectorStore, category: Category, document_id: str, keep: Iterable[str]) -> None:
    """Remove the chunks of ``document_id`` that are not in ``keep`` (older versions, leftovers of a killed run)."""
    store.delete_where(embedded_collection(category), keep_ids=list(keep), document_id=document_id)


def write_cleaned(store: VectorStore, docs: Sequence[CleanedDocument]) -> None:
    by_cat: dict[Category, list[CleanedDocument]] = {}
    for d in docs:
        by_cat.setdefault(d.category, []).append(d)
    for cat, items in by_cat.items():
        payloads = [{**d.model_dump(mode="json", exclude={"id"}), "document_id": d.id} for d in items]
        store.upsert(cleaned_collection(cat), _points([d.id for d in items], payloads))


def mark_done(store: VectorStore, states: dict[str, dict[str, Any]]) -> None:
    now = datetime.now(UTC).isoformat(timespec="seconds")
    ids = list(states)
    store.upsert(STATE_COLLECTION, _points(ids, [{**states[i], "featurized_at": now} for i in ids]))


def remove_documents(store: VectorStore, doc_ids: Sequence[str]) -> None:
    """Drop every feature of these documents: chunks, cleaned doc, then (last) their state."""
    if not doc_ids:
        return
    for cat in Category:
        for name in (embedded_collection(cat), cleaned_collection(cat)):
            store.delete_where(name, document_id=list(doc_ids))
    store.delete_ids(STATE_COLLECTION, list(doc_ids))


def remove_orphans(store: VectorStore, live_ids: Sequence[str], author_id: str | None = None) -> None:
    """Drop features of documents neither live nor in the state (e.g. a killed run, then the doc was deleted)."""
    exclude = {"document_id": list(live_ids)} if live_ids else None
    for cat in Category:
        for name in (embedded_collection(cat), cleaned_collection(cat)):
            store.delete_where(name, exclude=exclude, author_id=author_id)


# -- retrieval -----------------------------------------------------------------------------------
class ScoredChunk(BaseModel):
    """One search hit: a chunk of the author's text with its cosine similarity to the query."""

    score: float  # cosine similarity, higher is closer
    text: str
    link: str
    category: Category
    platform: str
    author_id: str
    author_full_name: str
    document_id: str
    chunk_id: str
    chunk_index: int
    token_count: int = 0
    metadata: dict[str, Any] = Field(default_factory=dict)  # start/end offsets in the cleaned doc, file
    vector: list[float] | None = Field(default=None, exclude=True, repr=False)  # only when asked


def embedded_collections(store: VectorStore, categories: Iterable[Category] | None = None) -> list[str]:
    """The ``embedded_*`` collections of these categories (default all) that exist."""
    names = [embedded_collection(c) for c in (categories or list(Category))]
    try:
        return [n for n in names if store.has_collection(n)]
    except TwinError:
        raise
    except Exception as exc:
        raise BackendUnavailable(f"vector store unavailable: {type(exc).__name__}: {exc}") from None


def count_chunks(store: VectorStore, author_id: str | None = None, categories: Iterable[Category] | None = None) -> int:
    """How many chunks the ``embedded_*`` collections hold (of one author, in some categories)."""
    match = {"author_id": author_id} if author_id else {}
    return sum(store.count(name, **match) for name in embedded_collections(store, categories))


def check_models(
    store: VectorStore, names: Iterable[str], model_id: str, dim: int | None, checked: set[str] | None = None
) -> None:
    """``check_model`` on each collection not yet in ``checked`` (which records the ones that passed)."""
    for name in names:
        if checked is None or name not in checked:
            check_model(store, name, model_id, dim)
            if checked is not None:
                checked.add(name)


def _scored(hit: VectorHit, collection: str) -> ScoredChunk:
    """A hit's payload as a ``ScoredChunk`` (the one mapping, for every retrieval)."""
    p = hit.payload
    return ScoredChunk(
        score=hit.score,
        text=str(p.get("content", "")),
        link=str(p.get("link", "")),
        category=p.get("category", collection.removeprefix("embedded_")),
        platform=str(p.get("platform", "")),
        author_id=str(p.get("author_id", "")),
        author_full_name=str(p.get("author_full_name", "")),
        document_id=str(p.get("document_id", "")),
        chunk_id=str(p.get("chunk_id") or hit.id),
        chunk_index=int(p.get("chunk_index", 0)),
        token_count=int(p.get("token_count", 0)),
        metadata=p.get("metadata") or {},
        vector=hit.vector,
    )


@dataclass(frozen=True)
class ChunkQuery:
    """One query of ``search_chunks_batch``: a vector and its own author and categories filter."""

    vector: Sequence[float]
    author_id: str | None = None  # None: every author
    categories: Sequence[Category] | None = None  # None or empty: every category


def search_chunks(
    store: VectorStore,
    vector: Sequence[float],
    k: int,
    *,
    model_id: str,
    dim: int | None = None,
    author_id: str | None = None,
    categories: Iterable[Category] | None = None,
    with_vectors: bool = False,
    checked: set[str] | None = None,
) -> list[ScoredChunk]:
    """The ``k`` chunks closest to ``vector`` (a query embedded with ``model_id``), best first.

    With ``author_id`` only that author's chunks: filtered by the store, then re-checked on every hit
    (defence in depth). A collection embedded with another model or dimension is refused
    (ConfigError); ``checked`` caches the collections already checked by a long-lived caller.
    A store failure is BackendUnavailable.
    """
    query = ChunkQuery(vector, author_id, list(categories) if categories is not None else None)
    return search_chunks_batch(
        store, [query], k, model_id=model_id, dim=dim, with_vectors=with_vectors, checked=checked
    )[0]


def search_chunks_batch(
    store: VectorStore,
    queries: Sequence[ChunkQuery],
    k: int,
    *,
    model_id: str,
    dim: int | None = None,
    with_vectors: bool = False,
    checked: set[str] | None = None,
) -> list[list[ScoredChunk]]:
    """``search_chunks`` for several queries at once: one store request per collection for the whole
    batch (not one per query), each query keeping its own filter. One result list per query, in order,
    each exactly what ``search_chunks`` returns for that query alone."""
    if not queries:
        return []
    wanted = {c for q in queries for c in (q.categories or Category)}
    names = embedded_collections(store, [c for c in Category if c in wanted])
    check_models(store, names, model_id, dim, checked)
    found: dict[tuple[int, str], list[ScoredChunk]] = {}
    for name in names:
        asking = [i for i, q in enumerate(queries) if name in _collections_of(q)]
        if not asking:
            continue
        batch = [
            VectorQuery(queries[i].vector, {"author_id": queries[i].author_id} if queries[i].author_id else {})
            for i in asking
        ]
        try:
            results = store.search_batch(name, batch, k, with_vectors=with_vectors)
        except TwinError:
            raise
        except Exception as exc:
            raise BackendUnavailable(f"vector search on {name} failed: {type(exc).__name__}: {exc}") from None
        for i, points in zip(asking, results, strict=True):
            author_id = queries[i].author_id
            # the store filtered by author; every hit is checked again (defence in depth)
            found[i, name] = [
                _scored(h, name) for h in points if not author_id or h.payload.get("author_id") == author_id
            ]
    out: list[list[ScoredChunk]] = []
    for i, q in enumerate(queries):
        # the query's own collection order, as a search alone would do: equal scores keep their order
        hits = [h for name in _collections_of(q) for h in found.get((i, name), [])]
        hits.sort(key=lambda h: h.score, reverse=True)
        out.append(hits[:k])
    return out


def _collections_of(query: ChunkQuery) -> list[str]:
    return [embedded_collection(c) for c in (query.categories or list(Category))]
