"""The drift check reuses the query embeddings retrieval wrote to the request log (issue 22 item 4): a
logged query is not embedded again, a query logged by another embedding model is, and the float16
storage keeps the vector to within float16 rounding."""

from __future__ import annotations

from typing import Any

import numpy as np

from twin_core.domain.inference import InferenceLog, QueryEmbedding
from twin_core.monitoring.evidently_metrics import embeddings
from twin_core.monitoring.scopes import logged_vectors
from twin_core.monitoring.text_tools import TextTools

MODEL = "sentence-transformers/all-MiniLM-L6-v2"


def _vector(text: str) -> list[float]:
    rng = np.random.default_rng(sum(map(ord, text)))
    v = rng.normal(size=8)
    return list(v / np.linalg.norm(v))


def _tools(calls: list[list[str]]) -> TextTools:
    def embed(texts: list[str]) -> Any:
        calls.append(list(texts))
        return np.asarray([_vector(t) for t in texts])

    return TextTools(embed=embed, language=lambda text: "en", vocabulary=frozenset(), model_id=MODEL)


def test_float16_round_trip_through_the_stored_row() -> None:
    vector = _vector("what is an upsert?")
    row = InferenceLog(status="ok", query="what is an upsert?", query_embedding=QueryEmbedding.of(MODEL, vector))
    back = InferenceLog.from_mongo(row.to_mongo())
    assert back.query_embedding is not None and back.query_embedding.model == MODEL
    assert np.allclose(back.query_embedding.vector(), vector, atol=1e-3)
    assert len(back.query_embedding.f16) == 24  # 8 dims x 2 bytes, base64


def test_logged_queries_are_not_embedded_again() -> None:
    logged = ["what is an upsert?", "how do retries work?"]
    rows = [InferenceLog(status="ok", query=q, query_embedding=QueryEmbedding.of(MODEL, _vector(q))) for q in logged]
    rows.append(InferenceLog(status="ok", query="old model", query_embedding=QueryEmbedding.of("other", _vector("x"))))
    rows.append(InferenceLog(status="error", query="not logged"))
    known = logged_vectors(rows)
    assert set(known) == {(MODEL, q) for q in logged} | {("other", "old model")}

    calls: list[list[str]] = []
    texts = [*logged, "old model", "not logged"]
    frame = embeddings(texts, _tools(calls), artifacts=None, known=known)
    assert calls == [["old model", "not logged"]]  # only what the log has no vector of this model for
    assert frame.shape == (4, 8)
    for i, text in enumerate(texts):
        assert np.allclose(frame.iloc[i].to_numpy(), _vector(text), atol=1e-3)  # each row its own text's vector


def test_everything_logged_embeds_nothing() -> None:
    queries = ["a", "b", "c"]
    rows = [InferenceLog(status="ok", query=q, query_embedding=QueryEmbedding.of(MODEL, _vector(q))) for q in queries]
    calls: list[list[str]] = []
    frame = embeddings(queries, _tools(calls), artifacts=None, known=logged_vectors(rows))
    assert calls == [] and frame.shape == (3, 8)
