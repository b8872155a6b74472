"""``TwinTransformer`` (``kserve.Model``), the twin's front model: preprocess = author check, retrieval and
prompt building; predict = the LLM (the in-process predictor locally, ``predictor_host`` over KServe v1 on
a cluster, or any OpenAI-compatible endpoint such as KServe's Hugging Face runtime); postprocess =
sources, model version, request log. The predictor is ``predictor.py``.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
import time
import uuid
from collections.abc import AsyncIterator
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any

from twin_core.errors import BackendUnavailable, InputError, TwinError
from twin_core.inference.pipeline import Prepared, RAGAnswer, RAGPipeline, RAGRequest
from twin_core.inference.request_log import RequestLog, failure_status
from twin_core.llm.base import Generation, LLMBackend
from twin_core.serving import metrics
from twin_core.serving.deadline import cancel_status, outcome
from twin_core.serving.headers import CLIENT_HEADER, trusted_author
from twin_core.serving.kserve_import import import_kserve
from twin_core.serving.payloads import parse_v1, parse_v2, prediction, v2_response
from twin_core.serving.predictor import TwinPredictor, served_by
from twin_core.serving.retrieval_batching import RetrievalBatcher
from twin_core.serving.routing import split_key
from twin_core.settings import Settings

kserve = import_kserve()
log = logging.getLogger(__name__)


@dataclass
class _RequestState:
    request_id: str
    started: float = field(default_factory=time.perf_counter)
    requests: list[RAGRequest] = field(default_factory=list)
    prepared: list[Prepared] = field(default_factory=list)
    v2: bool = False
    client: str = ""
    stages: list[str] = field(default_factory=list)
    payload: Any = None


_STATE: ContextVar[_RequestState | None] = ContextVar("twin_request_state", default=None)


class TwinTransformer(kserve.Model):
    """RAG around the predictor: the author's own content in, a grounded answer with sources out."""

    def __init__(
        self,
        name: str,
        settings: Settings,
        *,
        local_predictor: TwinPredictor | None = None,
        remote_llm: LLMBackend | None = None,
        auth_disabled: bool = False,
    ) -> None:
        super().__init__(name)
        self.settings = settings
        self.local_predictor = local_predictor
        self.remote_llm = remote_llm
        self.auth_disabled = auth_disabled
        self.pipeline: RAGPipeline | None = None
        self._retrieval: RetrievalBatcher | None = None

    # -- lifecycle -------------------------------------------------------------------------------
    def load(self) -> bool:
        from twin_core.features.embedding_model import load_embedder
        from twin_core.inference.search import VectorRetriever
        from twin_core.serving.lazy_store import LazyVectorStore
        from twin_core.stores.warehouse import open_warehouse

        llm = self.local_predictor.llm if self.local_predictor else self.remote_llm
        tokens = llm if llm is not None else _tokenizer_counter(self.settings)
        store = LazyVectorStore(self.settings)
        store.try_open()  # opened once and kept: local Qdrant allows one process per folder
        self.pipeline = RAGPipeline(
            self.settings,
            warehouse=lambda: open_warehouse(self.settings),
            retriever=VectorRetriever(store, load_embedder(self.settings)),
            tokens=tokens,
            llm=llm,
            request_log=lambda wh: RequestLog(wh, on_failure=metrics.LOG_FAILURES.inc),
        )
        self.ready = True
        return self.ready

    @property
    def retrieval(self) -> RetrievalBatcher:
        """The gatherer of concurrent retrievals (over ``self.pipeline``, however it was set)."""
        assert self.pipeline is not None
        if self._retrieval is None or self._retrieval.pipeline is not self.pipeline:
            self._retrieval = RetrievalBatcher(self.pipeline, self.settings.serve.batch_max_size)
        return self._retrieval

    def authors(self) -> list[str]:
        assert self.pipeline is not None
        return [u.full_name for u in self.pipeline.users()]

    # -- KServe handlers -------------------------------------------------------------------------
    async def __call__(self, body: Any, headers: dict[str, str] | None = None, verb: Any = None) -> Any:
        headers = headers or {}
        state = _RequestState(
            request_id=headers.get("x-request-id") or str(uuid.uuid4()), client=headers.get(CLIENT_HEADER, "")
        )
        token = _STATE.set(state)
        metrics.IN_FLIGHT.inc()
        try:
            if verb is None:
                return await super().__call__(body, headers)
            return await super().__call__(body, headers, verb)
        except BaseException as exc:
            await self._failed(state, exc)
            raise
        finally:
            metrics.IN_FLIGHT.dec()
            _STATE.reset(token)

    async def refused(self, headers: dict[str, str], exc: BaseException) -> None:
        """A request the app refused before it reached this model (a body FastAPI or KServe could not read,
        the OpenAI route's checks): counted and written to the request log as one it refused itself."""
        state = _RequestState(
            request_id=headers.get("x-request-id") or str(uuid.uuid4()), client=headers.get(CLIENT_HEADER, "")
        )
        await self._failed(state, exc)

    async def preprocess(self, payload: Any, headers: dict[str, str] | None = None) -> Any:
        assert self.pipeline is not None
        state = _STATE.get() or _RequestState(str(uuid.uuid4()))
        if isinstance(payload, bytes | str):  # a body sent without Content-Type: application/json
            try:
                payload = json.loads(payload)
            except ValueError:
                raise InputError("request body is not valid JSON") from None
        state.v2 = isinstance(payload, kserve.InferRequest)
        state.requests = parse_v2(payload) if state.v2 else parse_v1(payload)
        key_author = None if self.auth_disabled else trusted_author(headers)
        if not self.auth_disabled and not key_author:
            raise InputError("no authenticated author for this request")  # the gateway always sets it
        # the instances of one request join the same retrieval batch (with other requests' too)
        results = await asyncio.gather(
            *(self.retrieval.prepare(req, key_author) for req in state.requests), return_exceptions=True
        )
        for result in results:
            if isinstance(result, Prepared):  # kept for the request log, even if another instance failed
                metrics.RETRIEVAL_SECONDS.observe(result.retrieval.seconds)
                state.prepared.append(result)
        for result in results:
            if isinstance(result, BaseException):
                raise result
        return {
            "instances": [
                {
                    "messages": p.prompt.messages,
                    "max_new_tokens": p.max_new_tokens,
                    "author": p.retrieval.author.full_name,
                    "client": split_key(state.client, state.request_id),
                }
                for p in state.prepared
            ]
        }

    async def predict(self, payload: Any, headers: dict[str, str] | None = None, response_headers: Any = None) -> Any:
        if self.local_predictor is not None:
            return await self.local_predictor.predict(payload, headers)
        if self.remote_llm is not None:
            preds = []
            for inst in payload["instances"]:
                gen = await asyncio.to_thread(
                    self.remote_llm.chat,
                    inst["messages"],
                    max_new_tokens=inst["max_new_tokens"],
                    temperature=self.settings.llm.temperature,
                    timeout_s=self.settings.llm.timeout_s,
                )
                preds.append(dataclasses.asdict(gen))
            return {"predictions": preds}
        try:  # a separate predictor container (KServe v1 over HTTP)
            return await super().predict(payload, headers, response_headers)
        except (NotImplementedError, InputError):
            raise
        except Exception as exc:
            raise BackendUnavailable(f"predictor unreachable: {type(exc).__name__}: {exc}") from None

    async def postprocess(
        self, result: Any, headers: dict[str, str] | None = None, response_headers: Any = None
    ) -> Any:
        state = _STATE.get()
        assert state is not None
        return await self.finish(state, result)

    async def finish(self, state: _RequestState, result: Any) -> Any:
        """Predictions -> answers with sources, model version and stage; request log; metrics."""
        assert self.pipeline is not None
        preds = result.get("predictions") if isinstance(result, dict) else None
        if not isinstance(preds, list) or len(preds) != len(state.prepared):
            raise BackendUnavailable("the predictor returned an unexpected response")
        answers: list[RAGAnswer] = []
        state.stages = []
        for prepared, pred in zip(state.prepared, preds, strict=True):
            gen = Generation(**{f.name: pred[f.name] for f in dataclasses.fields(Generation)})
            answer = self.pipeline.finish(prepared, gen)
            answers.append(answer)
            state.stages.append(str(pred.get("stage") or "base"))
            metrics.TOKENS.labels(kind="prompt").inc(gen.prompt_tokens)
            metrics.TOKENS.labels(kind="completion").inc(gen.completion_tokens)
        await asyncio.to_thread(self._log_success, state, answers)
        metrics.REQUESTS.labels(status="ok").inc()
        if state.v2:
            return v2_response(answers[0], self.name, state.request_id)
        return {
            "predictions": [
                {**prediction(a), "served_stage": stage} for a, stage in zip(answers, state.stages, strict=True)
            ]
        }

    # -- streaming (OpenAI route) ----------------------------------------------------------------
    async def open_stream(self, body: Any, headers: dict[str, str]) -> _RequestState:
        """Authorize, retrieve and build the prompt of a streamed request (errors here are HTTP errors)."""
        state = _RequestState(
            request_id=headers.get("x-request-id") or str(uuid.uuid4()), client=headers.get(CLIENT_HEADER, "")
        )
        token = _STATE.set(state)
        try:
            state.payload = await self.preprocess(body, headers)
            if self.local_predictor is not None:
                await self.local_predictor.check_fits(state.payload)
        except BaseException as exc:
            await self._failed(state, exc)
            raise
        finally:
            _STATE.reset(token)
        return state

    async def stream(self, state: _RequestState, headers: dict[str, str]) -> AsyncIterator[str | dict[str, Any]]:
        """Text pieces as the model produces them (batched with other requests), then the final
        prediction dict (answer, sources, model_version, served_stage, usage)."""
        metrics.IN_FLIGHT.inc()
        served = None
        try:
            inst = state.payload["instances"][0]
            served = self.local_predictor.choose(inst) if self.local_predictor is not None else None
            if served is None:  # no in-process batcher (remote LLM/predictor): the whole answer at once
                result = await self.predict(state.payload, headers)
            else:
                gen = None
                async for piece in self._served_stream(served, inst):
                    if isinstance(piece, Generation):
                        gen = piece
                    else:
                        yield piece
                assert gen is not None
                metrics.GENERATION_SECONDS.observe(gen.seconds)
                result = {"predictions": [{**dataclasses.asdict(gen), "stage": served.stage}]}
            final = await self.finish(state, result)
            pred = final["predictions"][0]
            if served is None:
                yield pred["answer"]
            yield pred
        except BaseException as exc:
            await self._failed(state, served_by(exc, served) if served else exc)
            raise
        finally:
            metrics.IN_FLIGHT.dec()

    async def _served_stream(self, served: Any, inst: dict[str, Any]) -> AsyncIterator[str | Generation]:
        """``served``'s pieces then its Generation, counted in ``twin_model_requests_total`` as the
        predictor counts a whole generation (a failure mid-stream is that version's error)."""
        try:
            async for piece in served.batcher.stream(
                inst["messages"], max_new_tokens=inst["max_new_tokens"], temperature=self.settings.llm.temperature
            ):
                yield piece
        except BaseException as exc:
            gone = isinstance(exc, asyncio.CancelledError | GeneratorExit)  # the client went away (or timed out)
            metrics.MODEL_REQUESTS.labels(served.version, served.stage, cancel_status() if gone else "error").inc()
            raise
        metrics.MODEL_REQUESTS.labels(served.version, served.stage, "ok").inc()

    # -- request log -----------------------------------------------------------------------------
    def _log_success(self, state: _RequestState, answers: list[RAGAnswer]) -> None:
        assert self.pipeline is not None
        for prepared, answer, stage in zip(state.prepared, answers, state.stages, strict=True):
            self.pipeline.log_request(
                prepared.request,
                served_stage=stage,
                prepared=prepared,
                result=answer,
                status="ok",
                started=state.started,
                transport="http",
                request_id=state.request_id,
            )

    async def _failed(self, state: _RequestState, exc: BaseException) -> None:
        """Count a failed request and write its request-log rows, once: ``twin_logged`` tells the app's
        error handlers (``http_errors.py``) not to log it again. A request the gateway cancelled for time is
        logged as the server's failure (``deadline.py``), not as a client that left."""
        failure = outcome(exc)
        metrics.REQUESTS.labels(status=failure_status(failure)).inc()
        await asyncio.to_thread(self._log_failure, state, failure)
        exc.twin_logged = True  # type: ignore[attr-defined]

    def _log_failure(self, state: _RequestState, exc: BaseException) -> None:
        if self.pipeline is None:
            return
        error = exc if isinstance(exc, TwinError) else RuntimeError(type(exc).__name__)
        prepared = {id(p.request): p for p in state.prepared}
        for req in state.requests or [RAGRequest(query="")]:
            self.pipeline.log_request(
                req,
                prepared=prepared.get(id(req)),
                status=failure_status(exc),
                error=error,
                started=state.started,
                transport="http",
                request_id=state.request_id,
                model_version=getattr(exc, "served_version", None),  # the version that failed it, if any
                served_stage=getattr(exc, "served_stage", None),
            )


def _tokenizer_counter(settings: Settings) -> Any:
    """Only the tokenizer of the served model (a transformer container has no LLM): exact budgets."""
    from twin_core.llm.loading import load_tokenizer_counter

    try:
        return load_tokenizer_counter(settings)
    except Exception as exc:
        log.warning(
            "no tokenizer for %s (%s): context budget uses a 4-characters-per-token estimate",
            settings.llm.model_id,
            type(exc).__name__,
        )
        return None
