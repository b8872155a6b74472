"""The two KServe models of the twin.

- ``TwinTransformer`` (``kserve.Model``): preprocess = author check, retrieval and prompt building;
  predict = the LLM (the in-process predictor locally, ``predictor_host`` over KServe v1 on a
  cluster, or any OpenAI-compatible endpoint such as KServe's Hugging Face runtime);
  postprocess = sources, model version, request log.
- ``TwinPredictor`` (``kserve.Model``): chat messages in, generated text and token counts out.

Transformer -> predictor wire format (KServe v1):
``{"instances": [{"messages": [...], "max_new_tokens": N}]}`` ->
``{"predictions": [{"text", "prompt_tokens", "completion_tokens", "model_version", "seconds"}]}``.
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
from twin_core.serving.kserve_import import import_kserve
from twin_core.serving.payloads import parse_v1, parse_v2, prediction, v2_response, valid_text
from twin_core.serving.retrieval_batching import RetrievalBatcher
from twin_core.serving.routing import split_key
from twin_core.settings import Settings

kserve = import_kserve()
log = logging.getLogger(__name__)

AUTHOR_HEADER = "x-twin-author"  # set by the gateway middleware from the API key, never by clients
CLIENT_HEADER = "x-twin-client"  # set by the gateway: sticky client identity for the canary split


def trusted_author(headers: Any) -> str | None:
    """The author the gateway put in ``AUTHOR_HEADER`` (UTF-8 bytes, which ASGI servers hand over as
    latin-1 text), or None."""
    value = (headers or {}).get(AUTHOR_HEADER)
    if not value:
        return None
    try:
        return value.encode("latin-1").decode("utf-8")
    except (UnicodeEncodeError, UnicodeDecodeError):
        return value  # already text (an in-process call)


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


def _served_by(exc: BaseException, served: Any) -> BaseException:
    """Mark a generation failure with the version that served it: the request log attributes it
    there (a canary's errors are the canary's, not production's). A batch's rows share one model, so
    an exception object shared by a batch gets the same marks."""
    if getattr(exc, "served_version", None) is None:
        exc.served_version = served.version  # type: ignore[attr-defined]
        exc.served_stage = served.stage  # type: ignore[attr-defined]
    return exc


class TwinPredictor(kserve.Model):
    """The LLM behind the twin (chat messages in, text out).

    With the local transformers backend, generations are batched (``serving/batching.py``) and, when
    ``authors`` are given (``twin serve``), each author's registry production/canary version is served
    next to the base model (``serving/pool.py``), re-read every ``TWIN_SERVE_REGISTRY_POLL_S``.
    An instance may carry ``author`` and ``client`` (routing) next to ``messages``/``max_new_tokens``.
    """

    def __init__(
        self, name: str, settings: Settings, llm: LLMBackend | None = None, authors: list[str] | None = None
    ) -> None:
        super().__init__(name)
        self.settings = settings
        self.llm = llm
        self.authors = list(authors or [])
        self.pool: Any = None
        self._poller: asyncio.Task | None = None

    def load(self) -> bool:
        if self.llm is None:
            from twin_core.llm import open_llm

            self.llm = open_llm(self.settings)
        if hasattr(self.llm, "generate_batch"):
            from twin_core.serving.pool import ModelPool

            self.pool = ModelPool(self.settings, self.llm)
            if self.authors:
                self.pool.refresh(self.authors)
        self.ready = True
        return self.ready

    def stop(self) -> None:
        """KServe's teardown (``twin serve`` calls it after its event loop has ended): every decode thread
        ends before the process does (a process exiting during a decode step aborts, exit 134:
        ``ContinuousEngine.close``)."""
        if self.pool is not None:
            for model in [*self.pool.served(), *self.pool.take_retired()]:
                model.batcher.close(wait=True)
        super().stop()

    # -- registry polling ------------------------------------------------------------------------
    def start_background(self) -> None:
        """Called on the server's event loop: poll the registry for stage changes."""
        if self.pool is not None and self.authors and self.settings.serve.registry_poll_s > 0:
            self._poller = asyncio.get_running_loop().create_task(self._poll(), name="registry-poll")

    async def _poll(self) -> None:
        while True:
            await asyncio.sleep(self.settings.serve.registry_poll_s)
            try:
                await asyncio.to_thread(self.pool.refresh, self.authors)
                self.close_retired()
            except Exception:
                log.exception("registry poll failed")

    def close_retired(self) -> None:
        """Close the versions the registry no longer routes to, on the running loop. Each answers what it has
        queued and running first; the wait for that runs in the loop's executor, not in the poll, so new stage
        changes are not held up by a long answer, and ``asyncio.run`` joins that executor before ``twin serve``
        exits: a SIGTERM during the drain never stops a decode step midway (exit 134)."""
        loop = asyncio.get_running_loop()
        for model in self.pool.take_retired():
            loop.run_in_executor(None, lambda batcher=model.batcher: batcher.close(wait=True))

    def choose(self, instance: dict[str, Any]) -> Any:
        """The served model (pool entry) for one instance, or None without a pool."""
        if self.pool is None:
            return None
        return self.pool.choose(instance.get("author"), str(instance.get("client") or ""))

    async def check_fits(self, payload: Any) -> None:
        """InputError (400) when an instance's prompt and answer do not fit the context of the model that
        would serve it: the engine finds it too, but only once the generation starts, which for a stream is
        after its headers went out (an error event in a 200, where OpenAI's API answers 400)."""
        for inst in payload["instances"]:
            served = self.choose(inst)
            encode = getattr(served.llm, "encode", None) if served is not None else None
            if encode is not None:
                await asyncio.to_thread(encode, inst["messages"], inst["max_new_tokens"])

    def _instances(self, payload: Any) -> list[tuple[list[dict[str, str]], int, dict[str, Any]]]:
        if not isinstance(payload, dict) or not isinstance(payload.get("instances"), list) or not payload["instances"]:
            raise InputError('the predictor expects {"instances": [{"messages": [...], "max_new_tokens": N}]}')
        out = []
        for i, inst in enumerate(payload["instances"]):
            msgs = inst.get("messages") if isinstance(inst, dict) else None
            if (
                not isinstance(msgs, list)
                or not msgs
                or not all(
                    isinstance(m, dict) and isinstance(m.get("role"), str) and isinstance(m.get("content"), str)
                    for m in msgs
                )
            ):
                raise InputError(f"instances[{i}].messages: expected a list of {{role, content}} strings")
            for j, m in enumerate(msgs):  # the tokenizer fails on a lone surrogate (a 500 otherwise)
                valid_text(m["role"], f"instances[{i}].messages[{j}].role")
                valid_text(m["content"], f"instances[{i}].messages[{j}].content")
            n = inst.get("max_new_tokens", self.settings.llm.max_new_tokens)
            if isinstance(n, bool) or not isinstance(n, int) or not 0 < n <= self.settings.llm.max_new_tokens_cap:
                raise InputError(f"instances[{i}].max_new_tokens: 1..{self.settings.llm.max_new_tokens_cap}")
            out.append(([{"role": m["role"], "content": m["content"]} for m in msgs], n, inst))
        return out

    async def _one(self, messages: list[dict[str, str]], n: int, inst: dict[str, Any]) -> dict[str, Any]:
        assert self.llm is not None
        served = self.choose(inst)
        if served is None:  # a remote (OpenAI-compatible) backend: no batching here
            gen = await asyncio.to_thread(
                self.llm.chat,
                messages,
                max_new_tokens=n,
                temperature=self.settings.llm.temperature,
                timeout_s=self.settings.serve.request_timeout_s,
            )
            stage = "base"
        else:
            stage = served.stage
            try:
                gen = await served.batcher.generate(
                    messages, max_new_tokens=n, temperature=self.settings.llm.temperature
                )
            except asyncio.CancelledError as exc:  # the client left, or the request ran past its deadline
                metrics.MODEL_REQUESTS.labels(served.version, stage, cancel_status()).inc()
                _served_by(exc, served)
                raise
            except Exception as exc:
                metrics.MODEL_REQUESTS.labels(served.version, stage, "error").inc()
                _served_by(exc, served)
                raise
            metrics.MODEL_REQUESTS.labels(served.version, stage, "ok").inc()
        metrics.GENERATION_SECONDS.observe(gen.seconds)
        return {**dataclasses.asdict(gen), "stage": stage}

    async def predict(self, payload: Any, headers: dict[str, str] | None = None, response_headers: Any = None) -> Any:
        # the instances of one request join the same batch; one failing fails the request (KServe v1)
        instances = self._instances(payload)
        author = trusted_author(headers)
        if author is not None:  # a key routes to its own author's models only, whatever the body says
            instances = [(m, n, {**inst, "author": author}) for m, n, inst in instances]
        results = await asyncio.gather(*(self._one(m, n, inst) for m, n, inst in instances))
        return {"predictions": list(results)}


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
            await self._failed(state, _served_by(exc, served) if served else exc)
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
