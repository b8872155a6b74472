"""Batched retrieval: the RAG requests waiting at the same moment share one embed and one vector search.

Each request used to embed its query and search the store alone, in its own thread: under concurrent
clients they queued on the embedding model one by one and reached the generation batcher staggered.
Here the ``prepare`` calls that arrive while a batch runs wait for the next one, which takes them all
(up to ``max_size``) to ``RAGPipeline.prepare_many`` in one worker thread. No waiting window: a batch
starts as soon as the previous one ends, so a request alone is never delayed.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass

from twin_core.inference.pipeline import Prepared, RAGPipeline, RAGRequest
from twin_core.serving import metrics
from twin_core.serving.batching import settle

log = logging.getLogger(__name__)


@dataclass
class _Waiting:
    request: RAGRequest
    key_author: str | None
    future: asyncio.Future[Prepared]


class RetrievalBatcher:
    """Gathers concurrent ``prepare`` calls on one event loop into ``prepare_many`` batches."""

    def __init__(self, pipeline: RAGPipeline, max_size: int) -> None:
        if max_size < 1:
            raise ValueError(f"max_size must be at least 1 (got {max_size})")
        self.pipeline = pipeline
        self.max_size = max_size
        self._waiting: list[_Waiting] = []
        self._worker: asyncio.Task[None] | None = None

    async def prepare(self, req: RAGRequest, key_author: str | None = None) -> Prepared:
        """``pipeline.prepare(req, key_author)``, run in a batch with the other waiting requests.
        Its own result or exception; a caller cancelled while waiting leaves its batch."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Prepared] = loop.create_future()
        self._waiting.append(_Waiting(req, key_author, future))
        # one worker per loop; a worker of a loop that has ended (tests) is replaced
        if self._worker is None or self._worker.done() or self._worker.get_loop() is not loop:
            self._worker = loop.create_task(self._run(), name="retrieval-batcher")
        return await future  # cancelling the caller cancels the future: the worker skips it

    async def _run(self) -> None:
        while True:
            self._waiting = [w for w in self._waiting if not w.future.done()]  # drop the cancelled
            if not self._waiting:
                return  # the next prepare() starts a new worker
            batch, self._waiting = self._waiting[: self.max_size], self._waiting[self.max_size :]
            metrics.RETRIEVAL_BATCH_SIZE.observe(len(batch))
            try:
                results = await asyncio.to_thread(
                    self.pipeline.prepare_many, [(w.request, w.key_author) for w in batch]
                )
            except asyncio.CancelledError:  # the loop is shutting down: nobody is left to answer
                for w in batch + self._waiting:
                    w.future.cancel()
                raise
            except Exception as exc:  # prepare_many returns per-item errors: this is a bug, fail the batch
                log.exception("batched retrieval failed")
                results = [exc] * len(batch)
            for w, result in zip(batch, results, strict=True):
                settle(w.future, result)  # skipped when its caller went away while the batch ran
