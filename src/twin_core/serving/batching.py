"""Batching of concurrent generations for the local predictor.

``ContinuousBatcher`` (``TWIN_SERVE_BATCH_MODE=continuous``, the default) hands each request to a
``llm.continuous.ContinuousEngine``: it joins the running batch at the next decode step and leaves it as
soon as it is done. ``Batcher`` (``TWIN_SERVE_BATCH_MODE=window``) builds static batches: requests
that arrive within ``TWIN_SERVE_BATCH_WINDOW_MS`` of the oldest waiting one, or of the end of the
previous batch (so the clients it answered can rejoin), up to
``TWIN_SERVE_BATCH_MAX_SIZE``, are generated together by ``LocalLLM.generate_batch`` (left padding,
attention mask, per-request ``max_new_tokens``, stop strings and stream). Each caller gets its own
``Generation`` (own token counts) or its own exception: a request that fails does not fail the others.
A caller that is cancelled (client disconnected) leaves the queue, or stops its row of the running
batch at the next token. ``TWIN_SERVE_BATCHING=false`` runs one generation at a time (batch of one).
In window mode a batch is static: requests arriving while one runs wait for the next one (at most one
batch time).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from collections import deque
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

from twin_core.llm.base import Generation, Messages
from twin_core.serving import metrics
from twin_core.serving.deadline import cancel_reason

log = logging.getLogger(__name__)


@dataclass
class _Item:
    req: Any  # twin_core.llm.local.GenRequest
    future: asyncio.Future
    enqueued: float = field(default_factory=time.perf_counter)


class Batcher:
    """An asyncio front for ``llm.generate_batch``: one batch runs at a time, in a worker thread."""

    def __init__(
        self,
        llm: Any,
        *,
        max_batch: int = 8,
        window_ms: float = 10.0,
        enabled: bool = True,
        timeout_s: float | None = None,
    ) -> None:
        self.llm = llm
        self.max_batch = max_batch if enabled else 1
        self.window_s = window_ms / 1000 if enabled else 0.0
        self.timeout_s = timeout_s
        self.version = getattr(llm, "model_version", "unknown")
        self._pending: deque[_Item] = deque()
        self._wake: asyncio.Event | None = None
        self._worker: asyncio.Task | None = None
        self._closed = False
        self._last_end = 0.0  # perf_counter() when the previous batch finished

    # -- public ----------------------------------------------------------------------------------
    async def generate(
        self,
        messages: Messages,
        *,
        max_new_tokens: int,
        temperature: float = 0.0,
        stop: tuple[str, ...] = (),
        on_text: Callable[[str], None] | None = None,
    ) -> Generation:
        """The generation of one request, batched with whoever else is waiting."""
        from twin_core.llm.local import GenRequest

        if self._closed:
            raise RuntimeError(f"model {self.version} is no longer served")
        req = GenRequest(messages, max_new_tokens, temperature, tuple(stop), on_text, threading.Event())
        return await self._run(req)

    async def _run(self, req: Any) -> Generation:
        """Queue one request for the next static batch and wait for its result."""
        self._start()
        item = _Item(req, asyncio.get_running_loop().create_future())
        self._pending.append(item)
        metrics.BATCH_PENDING.labels(self.version).inc()
        assert self._wake is not None
        self._wake.set()
        try:
            return await item.future
        except asyncio.CancelledError:
            req.cancelled.set()  # the running batch stops this row at its next token
            if item in self._pending:
                self._pending.remove(item)
                metrics.BATCH_PENDING.labels(self.version).dec()
            metrics.BATCH_CANCELLED.labels(self.version, cancel_reason()).inc()
            raise

    async def stream(
        self, messages: Messages, *, max_new_tokens: int, temperature: float = 0.0, stop: tuple[str, ...] = ()
    ) -> AsyncIterator[str | Generation]:
        """Text pieces as the batch produces them, then the final ``Generation``."""
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[str] = asyncio.Queue()

        def on_text(piece: str) -> None:  # called in the generation thread
            loop.call_soon_threadsafe(queue.put_nowait, piece)

        task = asyncio.ensure_future(
            self.generate(messages, max_new_tokens=max_new_tokens, temperature=temperature, stop=stop, on_text=on_text)
        )
        try:
            while True:
                getter = asyncio.ensure_future(queue.get())
                done, _ = await asyncio.wait({getter, task}, return_when=asyncio.FIRST_COMPLETED)
                if getter in done:
                    yield getter.result()
                    continue
                getter.cancel()
                while not queue.empty():
                    yield queue.get_nowait()
                yield task.result()
                return
        finally:
            if not task.done():
                task.cancel()
                with contextlib.suppress(BaseException):
                    await task

    def close(self, *, wait: bool = False) -> None:
        """Stop taking new work; the worker ends once what is queued has been generated. Its generation
        runs in the event loop's executor, which the interpreter joins at exit: ``wait`` has nothing to add."""
        self._closed = True
        if self._wake is not None:
            self._wake.set()

    # -- worker ----------------------------------------------------------------------------------
    def _start(self) -> None:
        if self._worker is None or self._worker.done():
            self._wake = asyncio.Event()
            self._worker = asyncio.get_running_loop().create_task(self._work(), name=f"batcher-{self.version}")

    async def _take(self) -> list[_Item]:
        assert self._wake is not None
        while not self._pending:
            if self._closed:
                return []
            self._wake.clear()
            await self._wake.wait()
        # wait for company: until `window` after the oldest arrived - or after the previous batch ended,
        # so the clients it just answered can come back in time to join - or until the batch is full
        while len(self._pending) < self.max_batch:
            start = max(self._pending[0].enqueued, self._last_end) if self._pending else 0
            left = start + self.window_s - time.perf_counter() if self._pending else 0
            if left <= 0:
                break
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=left)
        batch: list[_Item] = []
        while self._pending and len(batch) < self.max_batch:
            item = self._pending.popleft()
            metrics.BATCH_PENDING.labels(self.version).dec()
            if not item.future.done():
                batch.append(item)
        return batch

    async def _work(self) -> None:
        while True:
            batch = await self._take()
            if not batch:
                if self._closed and not self._pending:
                    return
                continue
            now = time.perf_counter()
            metrics.BATCH_SIZE.labels(self.version).observe(len(batch))
            for item in batch:
                metrics.BATCH_QUEUE_SECONDS.labels(self.version).observe(now - item.enqueued)
            metrics.BATCH_ACTIVE.labels(self.version).set(len(batch))
            try:
                results = await asyncio.to_thread(
                    self.llm.generate_batch, [i.req for i in batch], timeout_s=self.timeout_s
                )
            except Exception as exc:  # generate_batch isolates per-request errors; this is a bug or OOM
                log.exception("batched generation failed")
                results = [exc] * len(batch)
            finally:
                metrics.BATCH_ACTIVE.labels(self.version).set(0)
                self._last_end = time.perf_counter()
            for item, result in zip(batch, results, strict=True):
                settle(item.future, result)


class ContinuousBatcher(Batcher):
    """``Batcher``'s interface over iteration-level batching: no window, no waiting for a batch to end."""

    def __init__(
        self,
        llm: Any,
        *,
        max_batch: int = 8,
        timeout_s: float | None = None,
        prefix_cache: bool = True,
        **_window: Any,
    ) -> None:
        from twin_core.llm.continuous import ContinuousEngine

        super().__init__(llm, max_batch=max_batch, timeout_s=timeout_s)
        self.engine = ContinuousEngine(
            llm,
            max_batch=max_batch,
            on_step=self._stepped,
            on_admit=self._admitted,
            on_rows=self._rows,
            on_prefill=self._prefilled,
            prefix_cache=prefix_cache,
        )

    def _stepped(self, rows: int) -> None:
        metrics.BATCH_SIZE.labels(self.version).observe(rows)

    def _prefilled(self, computed: int, cached: int) -> None:
        metrics.PREFILL_TOKENS.labels(self.version, "computed").inc(computed)
        metrics.PREFILL_TOKENS.labels(self.version, "cached").inc(cached)

    def _rows(self, rows: int) -> None:
        metrics.BATCH_ACTIVE.labels(self.version).set(rows)

    def _admitted(self, waited_s: float) -> None:
        metrics.BATCH_PENDING.labels(self.version).dec()
        metrics.BATCH_QUEUE_SECONDS.labels(self.version).observe(waited_s)

    async def _run(self, req: Any) -> Generation:
        """Hand one request to the decode loop and wait for its result."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future = loop.create_future()

        def done(result: Generation | BaseException) -> None:  # called in the engine's thread
            loop.call_soon_threadsafe(settle, future, result)

        metrics.BATCH_PENDING.labels(self.version).inc()
        self.engine.submit(req, done, timeout_s=self.timeout_s)
        try:
            return await future
        except asyncio.CancelledError:
            req.cancelled.set()  # the engine drops the row at its next step
            metrics.BATCH_CANCELLED.labels(self.version, cancel_reason()).inc()
            raise

    def close(self, *, wait: bool = False) -> None:
        """``wait``: until the engine's thread has ended (never on the event loop: it blocks)."""
        self._closed = True
        self.engine.close(wait=wait)


def settle(future: asyncio.Future, result: Any) -> None:
    """Resolve a caller's future with its result or exception, unless the caller already went away."""
    if future.done():  # its caller was cancelled
        return
    if isinstance(result, BaseException):
        future.set_exception(result)
    else:
        future.set_result(result)
