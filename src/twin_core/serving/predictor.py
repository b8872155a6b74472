"""``TwinPredictor`` (``kserve.Model``): chat messages in, generated text and token counts out.

Wire format (KServe v1), from the transformer (``transformer.py``) or any client:
``{"instances": [{"messages": [...], "max_new_tokens": N}]}`` ->
``{"predictions": [{"text", "prompt_tokens", "completion_tokens", "model_version", "seconds"}]}``.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from typing import Any

from twin_core.errors import InputError
from twin_core.llm.base import LLMBackend
from twin_core.serving import metrics
from twin_core.serving.deadline import cancel_status
from twin_core.serving.headers import trusted_author
from twin_core.serving.kserve_import import import_kserve
from twin_core.serving.payloads import valid_text
from twin_core.settings import Settings

kserve = import_kserve()
log = logging.getLogger(__name__)


def served_by(exc: BaseException, served: Any) -> BaseException:
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
                served_by(exc, served)
                raise
            except Exception as exc:
                metrics.MODEL_REQUESTS.labels(served.version, stage, "error").inc()
                served_by(exc, served)
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
