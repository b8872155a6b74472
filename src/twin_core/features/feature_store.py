"""The feature store layout in Qdrant and the sync state that makes runs incremental.

- ``cleaned_<category>``: one payload-only point per cleaned document (id = document id).
- ``embedded_<category>``: one cosine vector per chunk (id = chunk id), payload = chunk + model id/dim.
  The collection metadata records the model too; a different model is refused.
- ``feature_state``: one payload-only point per featurized document: the raw content hash and the
  pipeline fingerprint it was featurized with. It lives next to the features on purpose: wiping the
  vector store wipes the state, so the next run rebuilds instead of trusting stale state.

Write order per document (what makes a killed run resumable with no duplicate and no missing point):
upsert new chunks -> delete that document's other chunks -> upsert the cleaned doc -> mark state done.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from typing import Any

from twin_core.domain.documents import Category
from twin_core.domain.features import CleanedDocument, EmbeddedChunk
from twin_core.errors import ConfigError
from twin_core.stores.vectors import VectorStore

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
            store.client.delete_collection(name)
        store.ensure_collection(name, dim, metadata={"model_id": model_id, "dim": dim, "kind": "embedded"})
        store.ensure_collection(cleaned_collection(cat), None, metadata={"kind": "cleaned"})
    store.ensure_collection(STATE_COLLECTION, None, metadata={"kind": "feature_state"})


def read_state(store: VectorStore, author_id: str | None = None) -> dict[str, dict[str, Any]]:
    """document id -> state payload (raw_content_hash, fingerprint, category, author_id, ...)."""
    match = {"author_id": author_id} if author_id else {}
    return {str(p.id): dict(p.payload or {}) for p in store.scroll(STATE_COLLECTION, batch_size=1024, **match)}


def _points(ids: Sequence[str], payloads: Sequence[dict], vectors: Sequence[Any] | None = None) -> list[Any]:
    from qdrant_client import models

    if vectors is None:
        return [models.PointStruct(id=i, vector={}, payload=p) for i, p in zip(ids, payloads, strict=True)]
    return [
        models.PointStruct(id=i, vector=list(map(float, v)), payload=p)
        for i, p, v in zip(ids, payloads, vectors, strict=True)
    ]


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
    from qdrant_client import models

    keep = list(keep)
    selector = models.Filter(
        must=[models.FieldCondition(key="document_id", match=models.MatchValue(value=document_id))],
        must_not=[models.HasIdCondition(has_id=keep)] if keep else None,
    )
    store.client.delete(embedded_collection(category), points_selector=selector, wait=True)


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
    from qdrant_client import models

    if not doc_ids:
        return
    for cat in Category:
        for name in (embedded_collection(cat), cleaned_collection(cat)):
            condition = models.FieldCondition(key="document_id", match=models.MatchAny(any=list(doc_ids)))
            selector = models.Filter(must=[condition])
            store.client.delete(name, points_selector=selector, wait=True)
    store.delete_ids(STATE_COLLECTION, list(doc_ids))


def remove_orphans(store: VectorStore, live_ids: Sequence[str], author_id: str | None = None) -> None:
    """Drop features of documents neither live nor in the state (e.g. a killed run, then the doc was deleted)."""
    from qdrant_client import models

    must = [models.FieldCondition(key="author_id", match=models.MatchValue(value=author_id))] if author_id else []
    must_not = [models.FieldCondition(key="document_id", match=models.MatchAny(any=list(live_ids)))] if live_ids else []
    for cat in Category:
        for name in (embedded_collection(cat), cleaned_collection(cat)):
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", UserWarning)
                store.client.delete(name, points_selector=models.Filter(must=must, must_not=must_not), wait=True)
