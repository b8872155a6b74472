"""Rerank: a sentence-transformers CrossEncoder when configured, else MMR re-scoring (offline default).

MMR (maximal marginal relevance) re-scores each candidate as
``lambda * sim(query, chunk) - (1 - lambda) * max sim(chunk, already chosen)``: relevant chunks
first, but a near-copy of a chunk already chosen sinks, so the context covers more ground.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any, Protocol

from twin_core.inference.search import RetrievedChunk

log = logging.getLogger(__name__)


class Reranker(Protocol):
    name: str

    def rerank(
        self, query: str, query_vector: Sequence[float], chunks: list[RetrievedChunk], k: int
    ) -> list[RetrievedChunk]: ...


def _dot(a: Sequence[float], b: Sequence[float]) -> float:
    return float(sum(x * y for x, y in zip(a, b, strict=False)))


class MMRReranker:
    name = "mmr"

    def __init__(self, lambda_: float = 0.7) -> None:
        self.lambda_ = lambda_

    def rerank(
        self, query: str, query_vector: Sequence[float], chunks: list[RetrievedChunk], k: int
    ) -> list[RetrievedChunk]:
        import numpy as np

        usable = [c for c in chunks if c.vector is not None]
        if len(usable) < len(chunks):  # no vectors (another retriever): keep similarity order
            return chunks[:k]
        if not chunks:
            return []
        vecs = np.asarray([c.vector for c in usable], dtype=np.float32)
        vecs /= np.linalg.norm(vecs, axis=1, keepdims=True) + 1e-12
        q = np.asarray(query_vector, dtype=np.float32)
        q /= np.linalg.norm(q) + 1e-12
        relevance = vecs @ q
        pairwise = vecs @ vecs.T
        chosen: list[int] = []
        left = list(range(len(usable)))
        while left and len(chosen) < k:
            redundancy = pairwise[np.ix_(left, chosen)].max(axis=1) if chosen else np.zeros(len(left), np.float32)
            mmr = self.lambda_ * relevance[left] - (1 - self.lambda_) * redundancy
            best = int(np.argmax(mmr))
            idx = left.pop(best)
            usable[idx].rerank_score = float(mmr[best])
            chosen.append(idx)
        return [usable[i] for i in chosen]


class CrossEncoderReranker:
    name = "cross-encoder"

    def __init__(self, model_id: str, offline: bool = True) -> None:
        from sentence_transformers import CrossEncoder

        self.model_id = model_id
        self.model: Any = CrossEncoder(model_id, device="cpu", local_files_only=offline)

    def rerank(
        self, query: str, query_vector: Sequence[float], chunks: list[RetrievedChunk], k: int
    ) -> list[RetrievedChunk]:
        if not chunks:
            return []
        scores = self.model.predict([(query, c.text) for c in chunks], show_progress_bar=False)
        for chunk, score in zip(chunks, scores, strict=True):
            chunk.rerank_score = float(score)
        return sorted(chunks, key=lambda c: c.rerank_score or 0.0, reverse=True)[:k]


class NoRerank:
    name = "none"

    def rerank(
        self, query: str, query_vector: Sequence[float], chunks: list[RetrievedChunk], k: int
    ) -> list[RetrievedChunk]:
        return chunks[:k]


def make_reranker(model_id: str | None, mmr_lambda: float, offline: bool = True) -> Reranker:
    """CrossEncoder when a model is configured (falls back to MMR if it cannot load), else MMR."""
    if model_id:
        try:
            return CrossEncoderReranker(model_id, offline)
        except Exception as exc:
            log.warning("rerank model %s unavailable (%s): using MMR", model_id, type(exc).__name__)
    return MMRReranker(mmr_lambda)
