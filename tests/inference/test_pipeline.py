"""The RAG pipeline on the sample corpus: author isolation, rerank, request log, limits."""

from __future__ import annotations

from typing import Any

import pytest
from support.rag_home import SECRET

from twin_core.errors import InputError
from twin_core.inference.errors import AccessDenied, UnknownAuthor
from twin_core.inference.pipeline import RAGRequest
from twin_core.inference.rerank import MMRReranker
from twin_core.inference.search import RetrievedChunk, merge_dedup
from twin_core.settings import updated

pytestmark = pytest.mark.slow


def _chunk(cid: str, text: str, score: float, vec: list[float]) -> RetrievedChunk:
    return RetrievedChunk(cid, text, f"https://x/{cid}", "articles", "a", "d", score, vec)


def test_merge_dedup_keeps_best_score_and_unique_text() -> None:
    a1, a2 = _chunk("a", "same text", 0.5, [1, 0]), _chunk("a", "same text", 0.9, [1, 0])
    b = _chunk("b", "Same   TEXT", 0.4, [1, 0])
    c = _chunk("c", "other", 0.3, [0, 1])
    merged = merge_dedup([[a1, b], [a2, c]])
    assert [m.id for m in merged] == ["a", "c"]
    assert merged[0].score == 0.9


def test_mmr_prefers_diversity() -> None:
    near = [
        _chunk("a", "a", 0.99, [1.0, 0.0]),
        _chunk("b", "b", 0.98, [0.999, 0.04]),
        _chunk("c", "c", 0.7, [0.7, 0.7]),
    ]
    top2 = MMRReranker(0.3).rerank("q", [1.0, 0.0], near, 2)
    assert [c.id for c in top2] == ["a", "c"]


def test_retrieval_is_restricted_to_the_author(rag_pipeline: Any) -> None:
    ada = rag_pipeline.resolve_author("Bob Marlowe's secret token?", None, "Ada Quillfeather")
    got = rag_pipeline.retrieve("Bob Marlowe's secret token? idempotency keys", ada)
    assert got.chunks
    assert all(SECRET not in c.text for c in got.chunks)
    assert all(c.author_id == ada.user.id for c in got.chunks)
    bob = rag_pipeline.resolve_author("secret", "Bob Marlowe", None)
    assert any(SECRET in c.text for c in rag_pipeline.retrieve("secret token", bob).chunks)


def test_author_rules(rag_pipeline: Any) -> None:
    users_before = len(rag_pipeline.users())
    with pytest.raises(AccessDenied):
        rag_pipeline.resolve_author("q", "Bob Marlowe", "Ada Quillfeather")
    with pytest.raises(UnknownAuthor):
        rag_pipeline.resolve_author("q", "Carol Nobody", None)
    with pytest.raises(InputError, match="several authors"):
        rag_pipeline.resolve_author("How do I size limits?", None, None)
    assert (
        rag_pipeline.resolve_author("What does Ada Quilfeather say?", None, None).user.full_name == "Ada Quillfeather"
    )
    assert len(rag_pipeline.users()) == users_before  # self-query never creates users


@pytest.mark.parametrize(
    "req",
    [
        RAGRequest(""),
        RAGRequest("   "),
        RAGRequest("x" * 1_000_000),
        RAGRequest("q", max_new_tokens=0),
        RAGRequest("q", max_new_tokens=-5),
        RAGRequest("q", max_new_tokens=10**9),
    ],
)
def test_bad_requests_are_input_errors(rag_pipeline: Any, req: RAGRequest) -> None:
    with pytest.raises(InputError):
        rag_pipeline.prepare(req, "Ada Quillfeather")


def test_answer_is_logged(rag_pipeline: Any) -> None:
    warehouse = rag_pipeline.warehouse
    before = len(list(warehouse.inference_logs()))
    answer = rag_pipeline.answer(RAGRequest("What is idempotency?", "Ada Quillfeather", max_new_tokens=4))
    assert answer.completion_tokens <= 4
    assert answer.prompt_tokens > 0
    assert answer.sources
    assert answer.model_version.startswith("smollm2-135m-instruct")
    rows = list(warehouse.inference_logs())
    assert len(rows) == before + 1
    row = rows[-1]  # time-ordered: the newest is last
    assert row.status == "ok"
    assert row.query == "What is idempotency?"
    assert row.author == "Ada Quillfeather"
    assert row.retrieved
    assert row.retrieved[0].chunk_id
    assert row.retrieved[0].score is not None
    assert row.completion_tokens == answer.completion_tokens
    assert row.answer == answer.answer
    assert row.latency_ms.total is not None
    assert row.latency_ms.generation is not None
    assert row.model_version == answer.model_version
    # the query's embedding, as retrieval computed it: the drift check reuses it instead of embedding again
    embedder = rag_pipeline.retriever.embedder
    assert row.query_embedding is not None and row.query_embedding.model == embedder.model_id
    expected = [float(x) for x in embedder.encode(["What is idempotency?"])[0]]
    assert len(row.query_embedding.vector()) == len(expected) == embedder.dim
    assert max(abs(a - b) for a, b in zip(row.query_embedding.vector(), expected, strict=True)) < 1e-3
    assert [r.id for r in warehouse.inference_logs(author="ada quillfeather", model_version=answer.model_version)][
        -1
    ] == row.id


def test_failed_log_write_never_fails_the_request(rag_pipeline: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    log = rag_pipeline.request_log

    class _Broken:
        def append_inference_log(self, row: Any) -> None:
            raise RuntimeError("disk full")

    monkeypatch.setattr(log, "warehouse", _Broken())
    before = log.failures
    answer = rag_pipeline.answer(RAGRequest("What is chunking?", "Ada Quillfeather", max_new_tokens=2))
    assert answer.answer is not None
    assert log.failures == before + 1


def test_hub_id_offline_falls_back_to_the_packaged_model(rag_settings: Any) -> None:
    from twin_core.llm.loading import load_local_llm

    llm = load_local_llm(updated(rag_settings, llm_model_id="no-such-org/no-such-model-xyz"))
    assert llm.model_version.startswith("smollm2-135m-instruct")
    gen = llm.chat([{"role": "user", "content": "Hi"}], max_new_tokens=2)
    assert gen.completion_tokens <= 2
    assert gen.prompt_tokens > 0


def test_retrieval_refuses_a_collection_embedded_with_another_model(rag_pipeline: Any) -> None:
    from twin_core.domain.documents import Category
    from twin_core.errors import ConfigError
    from twin_core.inference.search import VectorRetriever

    class OtherModel:
        model_id = "sentence-transformers/other-model"
        dim = 384

        def encode(self, texts: list[str], *, batch_size: int = 64) -> Any:
            raise AssertionError("must refuse before embedding")

    store = rag_pipeline.retriever.store
    with pytest.raises(ConfigError, match="other-model"):
        VectorRetriever(store, OtherModel()).search([0.0] * 384, 3, author_id="x", categories=[Category.POSTS])


def test_a_failed_request_is_logged_with_whose_failure_it_was(
    rag_pipeline: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A client's bad input is ``rejected``, a backend down ``unavailable``, anything else ``error``: the drift
    check's error rate counts only the server's failures (it used to log every failure as ``error``)."""
    from twin_core.errors import BackendUnavailable
    from twin_core.inference.errors import UnknownAuthor

    warehouse = rag_pipeline.warehouse
    with pytest.raises(UnknownAuthor):
        rag_pipeline.answer(RAGRequest("What is idempotency?", "Nobody At All", max_new_tokens=1))
    assert list(warehouse.inference_logs())[-1].status == "rejected"

    def down(*args: Any, **kwargs: Any) -> Any:
        raise BackendUnavailable("the LLM endpoint is down")

    monkeypatch.setattr(rag_pipeline, "generate", down)
    with pytest.raises(BackendUnavailable):
        rag_pipeline.answer(RAGRequest("What is idempotency?", "Ada Quillfeather", max_new_tokens=1))
    assert list(warehouse.inference_logs())[-1].status == "unavailable"
    monkeypatch.setattr(rag_pipeline, "generate", lambda *a, **k: 1 / 0)
    with pytest.raises(ZeroDivisionError):
        rag_pipeline.answer(RAGRequest("What is idempotency?", "Ada Quillfeather", max_new_tokens=1))
    assert list(warehouse.inference_logs())[-1].status == "error"
