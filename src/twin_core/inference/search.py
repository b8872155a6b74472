"""Filtered vector search over the feature store's ``embedded_*`` collections.

The collections and their payload are the feature pipeline's (one point per chunk: content, link,
category, author_id, document_id, chunk_id...). Every search is filtered server-side by author id:
retrieval never sees another author's chunks. Vectors come back with the hits so the reranker can
re-score without embedding the chunks again.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from twin_core.domain.documents import Category
from twin_core.errors import BackendUnavailable, TwinError
from twin_core.features.feature_store import check_model, embedded_collection

log = logging.getLogger(__name__)


@dataclass
class RetrievedChunk:
    id: str
    text: str
    link: str
    category: str
    author_id: str
    document_id: str
    score: float  # cosine similarity to the best-matching query
    vector: list[float] | None = field(default=None, repr=False)
    rerank_score: float | None = None

    def source(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "link": self.link,
            "score": round(self.score, 4),
            "category": self.category,
            "chunk_id": self.id,
            "document_id": self.document_id,
        }
        if self.rerank_score is not None:
            out["rerank_score"] = round(self.rerank_score, 4)
        return out


class Embedder(Protocol):
    model_id: str
    dim: int

    def encode(self, texts: list[str], *, batch_size: int = 64) -> Any: ...


class Retriever(Protocol):
    def embed(self, queries: list[str]) -> list[list[float]]: ...

    def search(
        self, vector: Sequence[float], k: int, *, author_id: str, categories: Sequence[Category] | None = None
    ) -> list[RetrievedChunk]: ...


class VectorRetriever:
    """Search the embedded collections of one vector store (kept open by the caller)."""

    def __init__(self, store: Any, embedder: Embedder) -> None:
        self.store = store
        self.embedder = embedder
        self._checked: set[str] = set()

    def embed(self, queries: list[str]) -> list[list[float]]:
        return [list(map(float, v)) for v in self.embedder.encode(queries)]

    def _collections(self, categories: Sequence[Category] | None) -> list[str]:
        names = [embedded_collection(c) for c in (categories or list(Category))]
        try:
            existing = [n for n in names if self.store.client.collection_exists(n)]
        except TwinError:
            raise
        except Exception as exc:
            raise BackendUnavailable(f"vector store unavailable: {type(exc).__name__}: {exc}") from None
        for name in existing:  # refuse a collection embedded with another model (checked once)
            if name not in self._checked:
                check_model(self.store, name, self.embedder.model_id, self.embedder.dim)
                self._checked.add(name)
        return existing

    def search(
        self, vector: Sequence[float], k: int, *, author_id: str, categories: Sequence[Category] | None = None
    ) -> list[RetrievedChunk]:
        from qdrant_client import models

        flt = models.Filter(must=[models.FieldCondition(key="author_id", match=models.MatchValue(value=author_id))])
        hits: list[RetrievedChunk] = []
        for name in self._collections(categories):
            try:
                res = self.store.client.query_points(
                    name, query=list(vector), query_filter=flt, limit=k, with_payload=True, with_vectors=True
                )
            except Exception as exc:
                raise BackendUnavailable(f"vector search on {name} failed: {type(exc).__name__}: {exc}") from None
            for p in res.points:
                payload = p.payload or {}
                if payload.get("author_id") != author_id:  # defence in depth: the filter must have held
                    continue
                vec = p.vector if isinstance(p.vector, list) else None
                hits.append(
                    RetrievedChunk(
                        id=str(payload.get("chunk_id") or p.id),
                        text=str(payload.get("content", "")),
                        link=str(payload.get("link", "")),
                        category=str(payload.get("category", name.removeprefix("embedded_"))),
                        author_id=author_id,
                        document_id=str(payload.get("document_id", "")),
                        score=float(p.score),
                        vector=vec,
                    )
                )
        hits.sort(key=lambda h: h.score, reverse=True)
        return hits[:k]


def merge_dedup(result_lists: Sequence[Sequence[RetrievedChunk]]) -> list[RetrievedChunk]:
    """One list from the searches of every (expanded) query: the best score per chunk, then by text."""
    by_id: dict[str, RetrievedChunk] = {}
    for results in result_lists:
        for hit in results:
            kept = by_id.get(hit.id)
            if kept is None or hit.score > kept.score:
                by_id[hit.id] = hit
    seen_text: set[str] = set()
    merged: list[RetrievedChunk] = []
    for hit in sorted(by_id.values(), key=lambda h: h.score, reverse=True):
        key = " ".join(hit.text.split()).casefold()
        if key in seen_text:  # the same text under two ids (e.g. a cross-posted article)
            continue
        seen_text.add(key)
        merged.append(hit)
    return merged
