"""The RAG pipeline's view of retrieval: ``VectorRetriever`` over the feature store's one search
(``features.feature_store.search_chunks_batch``: model check, author filter re-checked on every hit).
Vectors come back with the hits so the reranker can re-score without embedding the chunks again.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from twin_core.domain.documents import Category
from twin_core.features.feature_store import ChunkQuery, ScoredChunk, search_chunks_batch

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

    @classmethod
    def from_hit(cls, hit: ScoredChunk) -> RetrievedChunk:
        return cls(
            id=hit.chunk_id,
            text=hit.text,
            link=hit.link,
            category=hit.category.value,
            author_id=hit.author_id,
            document_id=hit.document_id,
            score=hit.score,
            vector=hit.vector,
        )

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

    def search_batch(self, queries: Sequence[ChunkQuery], k: int) -> list[list[RetrievedChunk]]: ...


class VectorRetriever:
    """Search the embedded collections of one vector store (kept open by the caller)."""

    def __init__(self, store: Any, embedder: Embedder | Callable[[], Embedder]) -> None:
        self.store = store
        self._embedder = embedder  # or a factory, called at the first use (the model takes seconds to load)
        self._checked: set[str] = set()

    @property
    def embedder(self) -> Embedder:
        if callable(self._embedder) and not hasattr(self._embedder, "model_id"):  # a factory, not a model
            self._embedder = self._embedder()  # type: ignore[operator]
        return self._embedder  # type: ignore[return-value]

    @property
    def model_id(self) -> str:
        return self.embedder.model_id

    def embed(self, queries: list[str]) -> list[list[float]]:
        return [list(map(float, v)) for v in self.embedder.encode(queries)]

    def search(
        self, vector: Sequence[float], k: int, *, author_id: str, categories: Sequence[Category] | None = None
    ) -> list[RetrievedChunk]:
        return self.search_batch([ChunkQuery(vector, author_id, categories)], k)[0]

    def search_batch(self, queries: Sequence[ChunkQuery], k: int) -> list[list[RetrievedChunk]]:
        """The ``k`` best chunks of each query (one list per query, in order), searched together."""
        results = search_chunks_batch(
            self.store,
            queries,
            k,
            model_id=self.embedder.model_id,
            dim=self.embedder.dim,
            with_vectors=True,  # the reranker (MMR) re-scores without embedding the chunks again
            checked=self._checked,
        )
        return [[RetrievedChunk.from_hit(h) for h in hits] for hits in results]


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
