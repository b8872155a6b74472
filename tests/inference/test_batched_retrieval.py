"""Batched retrieval on the sample corpus: ``RAGPipeline.prepare_many`` gives each request exactly what
``prepare`` gives it alone, with one embed call for the batch; ``serving.retrieval_batching`` gathers the
concurrent ``prepare`` calls into such batches."""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Sequence
from typing import Any

import pytest
from support import SAMPLE_DIR

from twin_core.domain.documents import Category
from twin_core.errors import BackendUnavailable, InputError
from twin_core.features.feature_store import ChunkQuery
from twin_core.inference.errors import AccessDenied, UnknownAuthor
from twin_core.inference.pipeline import Prepared, RAGPipeline, RAGRequest
from twin_core.inference.search import RetrievedChunk
from twin_core.llm.base import Generation
from twin_core.settings import updated

pytestmark = pytest.mark.slow

ADA = "Ada Quillfeather"
SAMPLE_QUERIES = [
    json.loads(line)["query"] for line in (SAMPLE_DIR / "queries.jsonl").read_text().splitlines() if line.strip()
]


class CountingRetriever:
    """The real retriever, recording every ``embed`` and ``search_batch`` call (the queries it got).
    ``hold``: the next ``embed`` call signals ``entered`` and waits for ``release``."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.embeds: list[list[str]] = []
        self.searches: list[int] = []
        self.hold = False
        self.entered = threading.Event()
        self.release = threading.Event()

    def embed(self, queries: list[str]) -> list[list[float]]:
        self.embeds.append(list(queries))
        if self.hold:
            self.hold = False
            self.entered.set()
            assert self.release.wait(120), "the test never released the held batch"
        return self.inner.embed(queries)

    def search(self, vector: Sequence[float], k: int, **kw: Any) -> list[RetrievedChunk]:
        raise AssertionError("the pipeline searches in batches")

    def search_batch(self, queries: Sequence[ChunkQuery], k: int) -> list[list[RetrievedChunk]]:
        self.searches.append(len(queries))
        return self.inner.search_batch(queries, k)


class ParaphrasingLLM:
    """Expansions without a model: two fixed rewrites of the question (the last line of the prompt)."""

    model_version = "paraphraser"

    def chat(self, messages: list[dict[str, str]], **kw: Any) -> Generation:
        query = messages[-1]["content"].splitlines()[-1]
        text = f"1. In other words: {query}\n2. Put simply, {query.lower()}"
        return Generation(text, 1, 1, self.model_version, 0.0)


def _pipeline(rag_pipeline: Any, retriever: Any, **overrides: Any) -> RAGPipeline:
    """The session pipeline's stores and tokenizer behind another retriever (and options)."""
    llm = overrides.pop("llm", rag_pipeline.llm)
    settings = updated(rag_pipeline.settings, **overrides) if overrides else rag_pipeline.settings
    return RAGPipeline(
        settings, warehouse=rag_pipeline.warehouse, retriever=retriever, tokens=rag_pipeline.tokens, llm=llm
    )


def _same(batched: Prepared | BaseException, alone: Prepared) -> None:
    assert isinstance(batched, Prepared), batched
    got, want = batched.retrieval, alone.retrieval
    assert [c.id for c in got.chunks] == [c.id for c in want.chunks]  # same chunks, same order
    assert [c.score for c in got.chunks] == pytest.approx([c.score for c in want.chunks], abs=1e-5)
    assert [c.rerank_score for c in got.chunks] == pytest.approx([c.rerank_score for c in want.chunks], abs=1e-5)
    assert (got.author.id, got.author_method, got.queries, got.candidates, got.reranker) == (
        want.author.id,
        want.author_method,
        want.queries,
        want.candidates,
        want.reranker,
    )
    assert batched.prompt == alone.prompt  # messages, used chunks, dropped, token count
    assert batched.max_new_tokens == alone.max_new_tokens
    assert batched.request is alone.request


def _batch_sizes() -> tuple[float, float]:
    """(sum, count) of the retrieval batch size histogram."""
    from prometheus_client import REGISTRY

    from twin_core.serving import metrics  # noqa: F401  (registers the metric)

    get = REGISTRY.get_sample_value
    return get("twin_retrieval_batch_size_sum") or 0.0, get("twin_retrieval_batch_size_count") or 0.0


def _items() -> list[tuple[RAGRequest, str | None]]:
    items: list[tuple[RAGRequest, str | None]] = [(RAGRequest(q, max_new_tokens=4), ADA) for q in SAMPLE_QUERIES[:6]]
    items.append((RAGRequest("What is Bob's secret token for idempotency keys?", "Bob Marlowe"), None))
    items.append((RAGRequest(SAMPLE_QUERIES[1], categories=[Category.POSTS, Category.ARTICLES]), ADA))
    return items


def test_prepare_many_is_prepare_one_by_one_with_one_embed_call(rag_pipeline: Any) -> None:
    retriever = CountingRetriever(rag_pipeline.retriever)
    pipeline = _pipeline(rag_pipeline, retriever)
    items = _items()
    alone = [pipeline.prepare(req, key) for req, key in items]
    assert retriever.embeds == [[req.query] for req, _ in items]  # one at a time: one call each
    retriever.embeds.clear()
    retriever.searches.clear()
    batched = pipeline.prepare_many(items)
    assert retriever.embeds == [[req.query for req, _ in items]]  # the whole batch: one call
    assert retriever.searches == [len(items)]  # and one batched vector search
    for got, want in zip(batched, alone, strict=True):
        _same(got, want)
    assert len({tuple(c.id for c in p.retrieval.chunks) for p in alone}) > 4  # really different results
    assert alone[6].retrieval.author.full_name == "Bob Marlowe"
    assert {c.category for c in alone[7].retrieval.chunks} <= {"posts", "articles"}
    assert pipeline.prepare_many([]) == []


def test_expanded_queries_are_embedded_with_the_batch(rag_pipeline: Any) -> None:
    retriever = CountingRetriever(rag_pipeline.retriever)
    pipeline = _pipeline(rag_pipeline, retriever, llm=ParaphrasingLLM(), rag_expansions=2)
    items = _items()[:3]
    alone = [pipeline.prepare(req, key) for req, key in items]
    retriever.embeds.clear()
    batched = pipeline.prepare_many(items)
    assert len(retriever.embeds) == 1
    assert retriever.embeds[0] == [q for p in alone for q in p.retrieval.queries]  # originals + expansions
    assert [len(p.retrieval.queries) for p in alone] == [3, 3, 3]
    for got, want in zip(batched, alone, strict=True):
        _same(got, want)


def test_a_bad_item_gets_its_own_error_and_the_others_their_answer(rag_pipeline: Any) -> None:
    retriever = CountingRetriever(rag_pipeline.retriever)
    pipeline = _pipeline(rag_pipeline, retriever)
    good = [(RAGRequest(q, max_new_tokens=4), ADA) for q in SAMPLE_QUERIES[2:5]]
    items = [
        (RAGRequest("   "), ADA),
        good[0],
        (RAGRequest("What is chunking?", "Carol Nobody"), None),
        good[1],
        (RAGRequest("secret token", "Bob Marlowe"), ADA),  # a key may only query its own author
        (RAGRequest("q", max_new_tokens=0), ADA),
        good[2],
    ]
    alone = [pipeline.prepare(req, key) for req, key in good]
    retriever.embeds.clear()
    out = pipeline.prepare_many(items)
    assert isinstance(out[0], InputError)
    assert isinstance(out[2], UnknownAuthor)
    assert isinstance(out[4], AccessDenied)
    assert isinstance(out[5], InputError)
    for got, want in zip([out[1], out[3], out[6]], alone, strict=True):
        _same(got, want)
    assert retriever.embeds == [[req.query for req, _ in good]]  # only the valid items are embedded
    with pytest.raises(UnknownAuthor):  # prepare is prepare_many of one: it raises
        pipeline.prepare(*items[2])


def test_a_failing_search_fails_the_batch_items_that_reached_it(rag_pipeline: Any, monkeypatch: Any) -> None:
    retriever = CountingRetriever(rag_pipeline.retriever)
    pipeline = _pipeline(rag_pipeline, retriever)

    def down(queries: Any, k: int) -> Any:
        raise BackendUnavailable("vector store unavailable: connection refused")

    monkeypatch.setattr(retriever, "search_batch", down)
    out = pipeline.prepare_many([(RAGRequest(SAMPLE_QUERIES[0]), ADA), (RAGRequest(""), ADA)])
    assert isinstance(out[0], BackendUnavailable)
    assert isinstance(out[1], InputError)
    with pytest.raises(BackendUnavailable):
        pipeline.prepare(RAGRequest(SAMPLE_QUERIES[0]), ADA)


def test_the_gatherer_batches_the_calls_waiting_while_a_batch_runs(rag_pipeline: Any) -> None:
    from twin_core.serving.retrieval_batching import RetrievalBatcher

    retriever = CountingRetriever(rag_pipeline.retriever)
    pipeline = _pipeline(rag_pipeline, retriever)
    first = RAGRequest(SAMPLE_QUERIES[0])
    waiting = [RAGRequest(q) for q in SAMPLE_QUERIES[1:6]]
    alone = {id(r): pipeline.prepare(r, ADA) for r in [first, *waiting]}
    retriever.embeds.clear()
    retriever.searches.clear()
    before = _batch_sizes()

    async def scenario() -> tuple[Any, list[Any], Any, Any]:
        batcher = RetrievalBatcher(pipeline, max_size=8)
        retriever.hold = True  # the first batch waits in embed until released
        running = asyncio.create_task(batcher.prepare(first, ADA))
        try:
            assert await asyncio.to_thread(retriever.entered.wait, 120)
            tasks = [asyncio.create_task(batcher.prepare(r, ADA)) for r in waiting]
            bad = asyncio.create_task(batcher.prepare(RAGRequest(""), ADA))
            gone = asyncio.create_task(batcher.prepare(RAGRequest("a client that hangs up"), ADA))
            while len(batcher._waiting) < 7:  # let every task queue up (no timing: just turns of the loop)
                await asyncio.sleep(0)
            gone.cancel()
            await asyncio.sleep(0)
        finally:
            retriever.release.set()
        results = await asyncio.gather(*tasks)
        return await running, results, await asyncio.gather(bad, return_exceptions=True), gone

    got_first, got_waiting, (bad_result,), gone = asyncio.run(scenario())
    # exactly two embed calls: the held batch, then every query that waited (not the cancelled one;
    # the empty query failed validation before embedding)
    assert retriever.embeds == [[first.query], [r.query for r in waiting]]
    assert retriever.searches == [1, 5]
    _same(got_first, alone[id(first)])
    for req, got in zip(waiting, got_waiting, strict=True):
        _same(got, alone[id(req)])
    assert isinstance(bad_result, InputError)
    assert gone.cancelled()
    after = _batch_sizes()
    assert after[0] - before[0] == 1 + 6  # batches of 1 and 6 (the empty query is in the second)
    assert after[1] - before[1] == 2
