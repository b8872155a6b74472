"""The RAG pipeline: author -> (expanded) queries -> filtered search -> merge/dedup -> rerank -> prompt -> LLM.

Used in-process by ``twin rag query`` and split across KServe's transformer (``prepare``) and
predictor (``LLMBackend.chat``) by ``twin serve``. Each step is timed and logged.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

from twin_core.domain.documents import Category, UserDocument
from twin_core.domain.inference import InferenceLog, LatencyMs, QueryEmbedding, RetrievedRef
from twin_core.errors import InputError
from twin_core.features.feature_store import ChunkQuery
from twin_core.features.retrieval import check_query
from twin_core.inference.errors import AccessDenied, UnknownAuthor
from twin_core.inference.expansion import expand_query
from twin_core.inference.request_log import RequestLog, failure_status
from twin_core.inference.rerank import NoRerank, Reranker, make_reranker
from twin_core.inference.search import RetrievedChunk, Retriever, merge_dedup
from twin_core.inference.selfquery import AuthorMatch, match_name, self_query
from twin_core.llm.base import Generation, LLMBackend
from twin_core.llm.prompt import ContextChunk, Prompt, TokenCounter, build_messages
from twin_core.settings import Settings

log = logging.getLogger(__name__)
T = TypeVar("T")


@dataclass
class RAGRequest:
    query: str
    author: str | None = None  # an author named by the caller
    max_new_tokens: int | None = None
    categories: list[Category] | None = None


@dataclass
class Retrieval:
    author: UserDocument
    author_method: str
    queries: list[str]  # the original first, then the expansions
    chunks: list[RetrievedChunk]
    candidates: int
    reranker: str
    seconds: float
    query_vector: list[float] | None = None  # the original query's embedding (the request log keeps it)
    embedding_model: str | None = None


@dataclass
class Prepared:
    request: RAGRequest
    retrieval: Retrieval
    prompt: Prompt
    max_new_tokens: int
    started: float = field(default_factory=time.perf_counter)


@dataclass
class RAGAnswer:
    answer: str
    sources: list[dict[str, Any]]
    model_version: str
    author: str
    prompt_tokens: int
    completion_tokens: int
    expanded_queries: list[str]
    timings: dict[str, float]

    def as_dict(self) -> dict[str, Any]:
        return {
            "answer": self.answer,
            "sources": self.sources,
            "model_version": self.model_version,
            "author": self.author,
            "usage": {"prompt_tokens": self.prompt_tokens, "completion_tokens": self.completion_tokens},
            "expanded_queries": self.expanded_queries,
            "timings": self.timings,
        }


def _unwrap(result: T | BaseException) -> T:
    """The result of a ``*_many`` slot, or its exception raised."""
    if isinstance(result, BaseException):
        raise result
    return result


def _logged_embedding(retrieval: Retrieval | None) -> QueryEmbedding | None:
    """The query's embedding for the request log (the drift check then need not embed it again)."""
    if retrieval is None or retrieval.query_vector is None or not retrieval.embedding_model:
        return None
    return QueryEmbedding.of(retrieval.embedding_model, retrieval.query_vector)


def validate_request(req: RAGRequest, settings: Settings) -> int:
    """Check the request against the limits; returns the max_new_tokens to use."""
    check_query(req.query, settings.serve.max_query_chars, empty="query is empty")  # also: UTF-8 text only
    if req.author is not None and (not isinstance(req.author, str) or not req.author.strip()):
        raise InputError("author must be a non-empty string when given")
    n = settings.llm.max_new_tokens if req.max_new_tokens is None else req.max_new_tokens
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise InputError(f"max_new_tokens must be a positive integer (got {n!r})")
    if n > settings.llm.max_new_tokens_cap:
        raise InputError(f"max_new_tokens={n} is above the cap {settings.llm.max_new_tokens_cap}")
    return n


class RAGPipeline:
    def __init__(
        self,
        settings: Settings,
        *,
        warehouse: Any,  # a Warehouse, or a factory of one
        retriever: Retriever,
        tokens: TokenCounter | None,
        llm: LLMBackend | None = None,
        reranker: Reranker | None = None,
        request_log: RequestLog | Callable[[Any], RequestLog] | None = None,
    ) -> None:
        self.settings = settings
        self.warehouse = warehouse() if callable(warehouse) else warehouse
        self.retriever = retriever
        self.tokens = tokens
        self.llm = llm
        self.reranker = reranker or make_reranker(settings.rag.rerank_model, settings.rag.mmr_lambda)
        self.request_log = request_log(self.warehouse) if callable(request_log) else request_log

    def use_llm(self, llm: LLMBackend) -> None:
        """Answer, and count the prompt's tokens, with ``llm`` (``twin rag query`` picks it for the author)."""
        self.llm = self.tokens = llm

    # -- author ----------------------------------------------------------------------------------
    def users(self) -> list[UserDocument]:
        return self.warehouse.users()

    def resolve_author(self, query: str, requested: str | None, key_author: str | None) -> AuthorMatch:
        """Whose content may be retrieved.

        With an API key, always the key's author: naming anyone else is refused (403); the query
        text cannot widen it. Without auth: the named author, else the one the query mentions,
        else the only author in the warehouse.
        """
        users = self.users()
        if key_author is not None:
            owner = match_name(key_author, users)
            if owner is None:
                raise UnknownAuthor(f"the API key's author {key_author!r} has no data in the warehouse")
            if requested is not None:
                asked = match_name(requested, users)
                if asked is None or asked.user.id != owner.user.id:
                    raise AccessDenied("this API key may only query its own author")
            return AuthorMatch(owner.user, "api_key", 1.0)
        if requested is not None:
            found = match_name(requested, users)
            if found is None:
                raise UnknownAuthor(f"unknown author {requested!r}")
            return found
        llm = self.llm if self.settings.rag.self_query_llm else None
        found = self_query(query, users, llm)
        if found is not None:
            return found
        if len(users) == 1:
            return AuthorMatch(users[0], "only_author", 1.0)
        if not users:
            raise UnknownAuthor("the warehouse has no authors yet: import or crawl some content first")
        raise InputError("several authors are known: name one with 'author' (or --author)")

    # -- retrieval -------------------------------------------------------------------------------
    def retrieve(
        self,
        query: str,
        author: AuthorMatch,
        *,
        k: int | None = None,
        expansions: int | None = None,
        rerank: bool = True,
        categories: Sequence[Category] | None = None,
    ) -> Retrieval:
        return _unwrap(self.retrieve_many([(query, author, categories)], k=k, expansions=expansions, rerank=rerank)[0])

    def retrieve_many(
        self,
        items: Sequence[tuple[str, AuthorMatch, Sequence[Category] | None]],
        *,
        k: int | None = None,
        expansions: int | None = None,
        rerank: bool = True,
    ) -> list[Retrieval | BaseException]:
        """``retrieve`` for several (query, author, categories) at once, one result per item in order.

        One ``embed`` call for every query of the batch (originals and expansions) and one batched
        vector search: concurrent requests share the model call and the store round trip. Merge and
        rerank stay per item, so each gets what it would alone. A failure of the shared steps is
        every item's; any later failure only its own item's. ``seconds``: from the batch start.
        """
        started = time.perf_counter()
        if not items:
            return []
        k = k or self.settings.rag.top_k
        n_exp = self.settings.rag.expansions if expansions is None else expansions
        reranker = self.reranker if rerank else NoRerank()
        queries: list[list[str]] = []
        for query, _, _ in items:
            expanded = [query]
            if n_exp > 0 and self.llm is not None:
                expanded += expand_query(self.llm, query, n_exp)
            queries.append(expanded)
        # every query of the batch, flat, with the filter of the item it belongs to
        filters = [(who.user.id, cats) for (_, who, cats), qs in zip(items, queries, strict=True) for _ in qs]
        try:
            vectors = self.retriever.embed([q for qs in queries for q in qs])
            searches = [ChunkQuery(v, aid, cats) for v, (aid, cats) in zip(vectors, filters, strict=True)]
            found = self.retriever.search_batch(searches, self.settings.rag.candidates)
        except Exception as exc:
            return [exc] * len(items)
        out: list[Retrieval | BaseException] = []
        at = 0  # where this item's queries start in vectors/found
        for (query, author, _), qs in zip(items, queries, strict=True):
            item_vectors, per_query, at = vectors[at : at + len(qs)], found[at : at + len(qs)], at + len(qs)
            try:
                out.append(self._ranked(query, author, qs, item_vectors, per_query, reranker, k, started))
            except Exception as exc:
                out.append(exc)
        return out

    def _ranked(
        self,
        query: str,
        author: AuthorMatch,
        queries: list[str],
        vectors: Sequence[Sequence[float]],
        per_query: list[list[RetrievedChunk]],
        reranker: Reranker,
        k: int,
        started: float,
    ) -> Retrieval:
        """One item of a batch: merge its queries' hits, rerank, and say what was kept."""
        candidates = merge_dedup(per_query)
        chunks = reranker.rerank(query, vectors[0], candidates, k)
        seconds = time.perf_counter() - started
        log.info(
            "retrieved %d/%d chunks for %s in %.0f ms (%d queries, rerank=%s)",
            len(chunks),
            len(candidates),
            author.user.full_name,
            seconds * 1000,
            len(queries),
            reranker.name,
        )
        return Retrieval(
            author.user,
            author.method,
            queries,
            chunks,
            len(candidates),
            reranker.name,
            seconds,
            query_vector=list(map(float, vectors[0])),
            embedding_model=getattr(self.retriever, "model_id", None),
        )

    # -- prompt and generation -------------------------------------------------------------------
    def prepare(self, req: RAGRequest, key_author: str | None = None) -> Prepared:
        return _unwrap(self.prepare_many([(req, key_author)])[0])

    def prepare_many(self, items: Sequence[tuple[RAGRequest, str | None]]) -> list[Prepared | BaseException]:
        """``prepare`` for several (request, key author) at once, one result per item in order: a
        ``Prepared``, or the exception that item raised (a bad item never fails the others).
        Retrieval is batched (``retrieve_many``); validation, author and prompt stay per item."""
        started = time.perf_counter()
        done: dict[int, Prepared | BaseException] = {}
        ready: list[tuple[int, RAGRequest, int, AuthorMatch]] = []
        for i, (req, key_author) in enumerate(items):
            try:
                max_new = validate_request(req, self.settings)
                ready.append((i, req, max_new, self.resolve_author(req.query, req.author, key_author)))
            except Exception as exc:
                done[i] = exc
        retrievals = self.retrieve_many([(req.query, author, req.categories) for _, req, _, author in ready])
        for (i, req, max_new, author), retrieval in zip(ready, retrievals, strict=True):
            if isinstance(retrieval, BaseException):
                done[i] = retrieval
                continue
            try:
                prompt = build_messages(
                    req.query,
                    [ContextChunk(c.text, c.link, c.category) for c in retrieval.chunks],
                    author=author.user.full_name,
                    tokens=self.tokens,
                    context_budget=self.settings.rag.context_tokens,
                )
            except Exception as exc:
                done[i] = exc
                continue
            done[i] = Prepared(req, retrieval, prompt, max_new, started)
        return [done[i] for i in range(len(items))]

    def generate(self, prepared: Prepared, timeout_s: float | None = None) -> Generation:
        if self.llm is None:
            raise InputError("this pipeline has no LLM (retrieval only)")
        return self.llm.chat(
            prepared.prompt.messages,
            max_new_tokens=prepared.max_new_tokens,
            temperature=self.settings.llm.temperature,
            timeout_s=timeout_s,
        )

    def finish(self, prepared: Prepared, gen: Generation) -> RAGAnswer:
        used = {c.link for c in prepared.prompt.used}
        sources = [c.source() for c in prepared.retrieval.chunks if c.link in used]
        total = time.perf_counter() - prepared.started
        return RAGAnswer(
            answer=gen.text,
            sources=sources,
            model_version=gen.model_version,
            author=prepared.retrieval.author.full_name,
            prompt_tokens=gen.prompt_tokens,
            completion_tokens=gen.completion_tokens,
            expanded_queries=prepared.retrieval.queries[1:],
            timings={
                "retrieval_s": round(prepared.retrieval.seconds, 4),
                "generation_s": round(gen.seconds, 4),
                "total_s": round(total, 4),
            },
        )

    def answer(self, req: RAGRequest, key_author: str | None = None, *, transport: str = "cli") -> RAGAnswer:
        """The whole RAG in-process, logged to ``inference_logs`` (success or failure)."""
        started = time.perf_counter()
        prepared = None
        try:
            prepared = self.prepare(req, key_author)
            result = self.finish(prepared, self.generate(prepared, self.settings.serve.request_timeout_s))
        except Exception as exc:
            # generation was attempted only once prepared: then the failure is this LLM's
            version = getattr(self.llm, "model_version", None) if prepared is not None else None
            self.log_request(
                req,
                prepared=prepared,
                status=failure_status(exc),
                error=exc,
                started=started,
                transport=transport,
                model_version=version,
            )
            raise
        self.log_request(req, prepared=prepared, result=result, status="ok", started=started, transport=transport)
        return result

    # -- request log -----------------------------------------------------------------------------
    def log_request(
        self,
        req: RAGRequest,
        *,
        prepared: Prepared | None = None,
        result: RAGAnswer | None = None,
        status: str,
        error: BaseException | None = None,
        started: float | None = None,
        transport: str = "cli",
        request_id: str | None = None,
        served_stage: str | None = None,
        model_version: str | None = None,
    ) -> None:
        """One ``inference_logs`` row. ``model_version``: the version that served a failed request
        (None when it failed before any model was chosen); a success carries its own."""
        if self.request_log is None:
            return
        total = time.perf_counter() - started if started is not None else None
        retrieval = prepared.retrieval if prepared else None
        row = InferenceLog(
            request_id=request_id,
            transport=transport,
            status=status,
            error=f"{type(error).__name__}: {error}" if error else None,
            query=req.query if isinstance(req.query, str) else None,
            author=retrieval.author.full_name if retrieval else None,
            author_id=retrieval.author.id if retrieval else None,
            author_method=retrieval.author_method if retrieval else None,
            expanded_queries=retrieval.queries[1:] if retrieval else [],
            retrieved=[
                RetrievedRef(chunk_id=c.id, score=c.score, rerank_score=c.rerank_score, link=c.link)
                for c in (retrieval.chunks if retrieval else [])
            ],
            reranker=retrieval.reranker if retrieval else None,
            prompt_tokens=result.prompt_tokens if result else None,
            completion_tokens=result.completion_tokens if result else None,
            answer=result.answer if result else None,
            model_version=result.model_version if result else model_version,
            served_stage=served_stage,
            latency_ms=LatencyMs(
                retrieval=round(retrieval.seconds * 1000, 2) if retrieval else None,
                generation=round(result.timings["generation_s"] * 1000, 2) if result else None,
                total=round(total * 1000, 2) if total is not None else None,
            ),
            query_embedding=_logged_embedding(retrieval),
        )
        self.request_log.write(row)


def open_pipeline(
    settings: Settings,
    *,
    with_llm: bool = True,
    store: Any = None,
    llm: LLMBackend | None = None,
    lazy_embedder: bool = False,
) -> RAGPipeline:
    """Open the stores, the embedding model and (optionally) the LLM, as configured. ``lazy_embedder``:
    the embedding model loads at the first query (`twin rag query` refuses a bad author before it)."""
    from twin_core.features.embedding_model import load_embedder
    from twin_core.inference.search import VectorRetriever
    from twin_core.llm import open_llm
    from twin_core.stores.vectors import open_vector_store
    from twin_core.stores.warehouse import open_warehouse

    if llm is None and with_llm:
        llm = open_llm(settings)
    embedder = (lambda: load_embedder(settings)) if lazy_embedder else load_embedder(settings)
    retriever = VectorRetriever(store or open_vector_store(settings), embedder)
    return RAGPipeline(
        settings,
        warehouse=lambda: open_warehouse(settings),
        retriever=retriever,
        tokens=llm,
        llm=llm,
        request_log=lambda wh: RequestLog(wh),
    )
