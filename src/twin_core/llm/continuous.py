"""Iteration-level (continuous) batching for a ``LocalLLM``: a request joins the running batch at the
next decode step instead of waiting for the whole batch to finish.

One worker thread owns the decode loop. Each turn it prefills the requests that arrived since the last
step (a long prompt alone, short ones together), copies their key/value cache into the running batch's
(left padded to one width), and then runs one decode step for every active row. A row that ends (EOS,
its ``max_new_tokens``, a stop string, its deadline, or its client gone) leaves the batch at once, so a
short answer never waits for a long one and a new request never waits for a batch to drain.
Transformers' own continuous batching (``generate_batch`` / ``init_continuous_batching``) drops the
repetition penalty the small models need and sizes a paged cache for GPUs; this loop keeps
``generate``'s greedy semantics on a plain ``DynamicCache`` (tested: the same text as ``LocalLLM.chat``
for every row, whenever it joined).
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from twin_core.errors import InputError
from twin_core.llm.base import Generation
from twin_core.llm.kv_cache import cache_argument
from twin_core.llm.local import REPETITION_PENALTY, Cancelled, GenRequest, LocalLLM, _Row
from twin_core.llm.prefix_cache import Layers, PrefixCache, cache_from, run_prefix

log = logging.getLogger(__name__)

Done = Callable[[Generation | BaseException], None]
Result = Callable[[int, Generation | BaseException], None]


SHORT_REST = 64  # prompt tokens after the cached prefix up to which rows are prefilled together


@dataclass
class _Job:
    req: GenRequest
    done: Done
    timeout_s: float | None
    enqueued: float = field(default_factory=time.perf_counter)


@dataclass
class _Prefill:
    """One prefill forward: its rows, their cache and attention mask, each row's last logits."""

    rows: list[_Active]
    cache: Any
    mask: Any
    logits: Any


class _Active:
    """One row of the running batch: its decoding state, the tokens it has seen (for the repetition
    penalty, prompt included, as ``generate`` does) and the token it feeds next."""

    def __init__(self, job: _Job, prompt: list[int]) -> None:
        self.job = job
        self.row = _Row(job.req, len(prompt))
        self.seen = list(prompt)
        self.next_token = 0
        self.started = time.perf_counter()
        self.deadline = self.started + job.timeout_s if job.timeout_s else None


class ContinuousEngine:
    """Runs ``GenRequest``s on ``llm`` with iteration-level batching (at most ``max_batch`` rows)."""

    def __init__(
        self,
        llm: LocalLLM,
        *,
        max_batch: int = 8,
        on_step: Callable[[int], None] | None = None,
        on_admit: Callable[[float], None] | None = None,
        on_rows: Callable[[int], None] | None = None,
        on_prefill: Callable[[int, int], None] | None = None,
        prefix_cache: bool = True,
        threads: int | None = None,
        lock: Any = None,
    ) -> None:
        self.llm = llm
        self.max_batch = max_batch
        self.threads = threads  # torch threads of the decode thread (None: the process's)
        self._turn_lock = lock if lock is not None else llm._lock  # held for each admit + step
        self.prefixes = PrefixCache() if prefix_cache else None  # the shared prompt start, prefilled once
        self.on_step = on_step  # called with the batch size of every decode step (metrics)
        self.on_admit = on_admit  # called with each request's seconds in the queue (metrics)
        self.on_rows = on_rows  # called with the number of active rows whenever it changes (metrics)
        self.on_prefill = on_prefill  # called with each prefill's prompt tokens: computed, cached (metrics)
        self._queue: queue.SimpleQueue[_Job | None] = queue.SimpleQueue()
        self._closed = False
        self._thread: threading.Thread | None = None
        self._start_lock = threading.Lock()
        self._rows: list[_Active] = []
        self._cache: Any = None
        self._mask: Any = None  # [rows, width] attention mask of the cached positions
        self._live: list[int] | None = None  # cache rows still decoding, once rows ended (dropped on the next copy)
        self._stopping = False
        self.steps = 0  # decode steps run (tests and benchmarks read it)
        self.prefill_passes = 0  # prefill forwards run (tests read it)
        self.max_rows_seen = 0

    # -- public (any thread) -------------------------------------------------------------------------
    def submit(self, req: GenRequest, done: Done, *, timeout_s: float | None = None) -> None:
        """Queue one request; ``done`` is called (in the engine's thread) with its result or exception."""
        self._enqueue(req, done, timeout_s)
        self._ensure_thread()

    def _enqueue(self, req: GenRequest, done: Done, timeout_s: float | None) -> None:
        if self._closed:
            raise RuntimeError(f"model {self.llm.model_version} is no longer served")
        self._queue.put(_Job(req, done, timeout_s))

    def close(self, *, wait: bool = False) -> None:
        """Stop taking work; the thread ends once every queued and running request is answered. ``wait``:
        until it has ended. A row's result is handed over from inside a step, so without waiting the thread
        may still run torch code; a process that exits meanwhile stops that daemon thread inside C++, and
        the C++ runtime aborts the process ("terminate called without an active exception", exit 134)."""
        self._closed = True
        self._queue.put(None)
        thread = self._thread
        if wait and thread is not None and thread is not threading.current_thread():
            thread.join()

    def run_all(
        self, reqs: list[GenRequest], *, timeout_s: float | None = None, on_result: Result | None = None
    ) -> list[Generation | BaseException]:
        """Every request through the engine, waiting for all (batch jobs and tests); ``on_result`` is called
        (engine thread) with each request's index and result as it ends."""
        results: list[Generation | BaseException | None] = [None] * len(reqs)
        left = threading.Semaphore(0)

        def done_at(i: int) -> Done:
            def done(result: Generation | BaseException) -> None:
                results[i] = result
                if on_result is not None:
                    on_result(i, result)
                left.release()

            return done

        for i, req in enumerate(reqs):  # all queued before the loop looks: the first batch is as full as it can be
            self._enqueue(req, done_at(i), timeout_s)
        self._ensure_thread()
        for _ in reqs:
            left.acquire()
        return [r if r is not None else RuntimeError("no result") for r in results]

    # -- the loop (engine thread) ----------------------------------------------------------------------
    def _ensure_thread(self) -> None:
        with self._start_lock:
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._loop, name=f"decode-{self.llm.model_version}", daemon=True)
                self._thread.start()

    def _take(self, block: bool) -> list[_Job]:
        """New jobs: waits for one when the batch is empty, else takes only what is already queued."""
        jobs: list[_Job] = []
        room = self.max_batch - len(self._rows)
        while len(jobs) < room:
            try:
                job = self._queue.get(block=block and not jobs)
            except queue.Empty:
                break
            if job is None:  # close(): every job was queued before it; finish those, then stop
                self._stopping = True
                break
            jobs.append(job)
        return jobs

    def _loop(self) -> None:
        import torch

        if self.threads:  # this thread's own count (OpenMP and MKL keep one per thread)
            torch.set_num_threads(self.threads)
        while True:
            jobs = self._take(block=not self._rows and not self._stopping)
            if not jobs and not self._rows:
                if self._stopping:
                    return
                continue
            try:
                with self._turn_lock, torch.inference_mode():
                    if jobs:
                        self._admit(jobs)
                    if self._rows:
                        self._step()
            except Exception as exc:  # a bug or out of memory: fail the running rows, keep serving
                log.exception("continuous decode step failed")
                for active in self._rows:
                    self._finish(active, exc)
                self._rows, self._cache, self._mask, self._live = [], None, None, None
                self._rows_changed()

    def _admit(self, jobs: list[_Job]) -> None:
        """Prefill the new requests (those that start with a cached prefix: only the rest) and merge them
        into the running batch."""
        fresh = self._render(jobs)
        if self.prefixes is not None and len(fresh) > 1:
            self._seed_prefix(fresh)
        if not fresh:
            return
        import torch

        try:
            prefills = self._prefill_all(fresh)
            joined = [active for p in prefills for active in p.rows]  # the order of their cache rows
            self._merge([(p.cache, p.mask) for p in prefills], joined)
        except Exception as exc:  # out of memory, say: these requests fail too (the loop fails the running ones)
            for active in fresh:
                self._finish(active, exc)
            raise
        self._rows += joined
        self.max_rows_seen = max(self.max_rows_seen, len(self._rows))
        self._rows_changed()
        self._choose(joined, torch.cat([p.logits for p in prefills]))
        self._drop_finished()

    def _render(self, jobs: list[_Job]) -> list[_Active]:
        """The jobs whose prompt renders, as new rows; the others get their error now."""
        fresh: list[_Active] = []
        for job in jobs:
            if self.on_admit is not None:
                self.on_admit(time.perf_counter() - job.enqueued)
            try:
                if job.req.max_new_tokens < 1:
                    raise InputError("max_new_tokens must be at least 1")
                prompt = self.llm.encode(job.req.messages, job.req.max_new_tokens)
            except Exception as exc:
                job.done(exc if isinstance(exc, InputError) else InputError(f"cannot render the prompt: {exc}"))
                continue
            fresh.append(_Active(job, prompt))
        return fresh

    def _prefill_all(self, fresh: list[_Active]) -> list[_Prefill]:
        """Each row's prompt after the longest cached prefix it starts with. A row with more than
        ``SHORT_REST`` tokens of its own is prefilled alone: padding rows to the longest cost the rejected
        answers' prompts (430 to 790 tokens) a tenth more tokens, for no gain in the matrix products, already
        near the CPU's peak at a few hundred tokens. Short rests on the same prefix go in one padded forward:
        a forward reads every weight once, and that, not the few tokens, is a short row's cost (16 one-line
        questions: 2.5-2.7 s row by row, 1.4-2.4 s together)."""
        prefills: list[_Prefill] = []
        short: dict[tuple[int, ...], tuple[Layers | None, list[_Active]]] = {}
        for active in fresh:
            hit = self.prefixes.match(active.seen) if self.prefixes is not None else None
            ids, layers = hit if hit is not None else ((), None)
            if len(active.seen) - len(ids) > SHORT_REST:
                prefills.append(self._prefill([active], len(ids), layers))
            else:
                short.setdefault(ids, (layers, []))[1].append(active)
        return prefills + [self._prefill(rows, len(ids), layers) for ids, (layers, rows) in short.items()]

    def _prefill(self, rows: list[_Active], shared: int, layers: Layers | None) -> _Prefill:
        """One forward over ``rows`` after their ``shared`` cached prompt tokens, left padded between the
        prefix and the rest (the mask hides the gap; positions count real tokens only)."""
        import torch

        device = self.llm.model.device
        rest = [a.seen[shared:] for a in rows]
        width = max(len(r) for r in rest)
        ids = torch.tensor([[self.llm.pad_id] * (width - len(r)) + r for r in rest], dtype=torch.long, device=device)
        mask = torch.tensor([[1] * shared + [0] * (width - len(r)) + [1] * len(r) for r in rest], device=device)
        cache = cache_from(self.llm.model, layers, len(rows))
        # the last position's logits only: projecting every prompt position onto the 49k-token vocabulary
        # was a fifth of the prefill's work, and a [rows, width, vocabulary] tensor, for nothing
        out = self.llm.model(
            input_ids=ids,
            attention_mask=mask,
            position_ids=(mask.cumsum(dim=1) - 1).clamp(min=0)[:, shared:],
            **cache_argument(self.llm.model, cache),
            use_cache=True,
            logits_to_keep=1,
        )
        self.prefill_passes += 1
        if self.on_prefill is not None:
            for r in rest:
                self.on_prefill(len(r), shared)
        if self.prefixes is not None and len(rows) == 1:  # the next prompt may share more of its start with it
            self.prefixes.remember(rows[0].seen, [(x.keys, x.values) for x in cache.layers])
        return _Prefill(rows, cache, mask, out.logits[:, -1, :])

    def _seed_prefix(self, fresh: list[_Active]) -> None:
        """Requests arriving together that share a start no cached prefix covers: prefill that start once
        (one row) and keep it, instead of once per request."""
        prompts = [a.seen for a in fresh if self.prefixes.match(a.seen, count=False) is None]
        n = self.prefixes.common(prompts) if len(prompts) > 1 else 0
        if not n:
            return
        self.prefixes.store(prompts[0][:n], run_prefix(self.llm.model, prompts[0][:n]))

    def _step(self) -> None:
        """One decode step for every active row."""
        import torch

        if self._live is not None:
            self._compose()
        device = self.llm.model.device
        ids = torch.tensor([[a.next_token] for a in self._rows], dtype=torch.long, device=device)
        self._mask = torch.cat([self._mask, torch.ones_like(self._mask[:, :1])], dim=1)
        positions = self._mask.sum(dim=1, keepdim=True) - 1
        out = self.llm.model(
            input_ids=ids,
            attention_mask=self._mask,
            position_ids=positions,
            **cache_argument(self.llm.model, self._cache),
            use_cache=True,
        )
        self.steps += 1
        if self.on_step is not None:
            self.on_step(len(self._rows))
        self._choose(list(self._rows), out.logits[:, -1, :])
        self._drop_finished()

    def _choose(self, rows: list[_Active], logits: Any) -> None:
        """The next token of each row (``generate``'s repetition penalty, then greedy or sampled), and
        what it means for the row: EOS, a stop string, the length limit, the deadline or a cancel."""
        import torch

        logits = logits.float()
        for i, active in enumerate(rows):
            req, row = active.job.req, active.row
            if req.cancelled is not None and req.cancelled.is_set():
                row.done = row.cancelled = True
                continue
            scores = logits[i]
            seen = torch.tensor(active.seen, dtype=torch.long, device=scores.device)
            picked = scores.gather(0, seen)
            scores = scores.scatter(
                0, seen, torch.where(picked < 0, picked * REPETITION_PENALTY, picked / REPETITION_PENALTY)
            )
            if req.temperature > 0:
                token = int(torch.multinomial(torch.softmax(scores / req.temperature, dim=-1), 1))
            else:
                token = int(scores.argmax())
            active.seen.append(token)
            active.next_token = token
            if token in self.llm.eos_ids:
                row.done = True
            else:
                row.ids.append(token)
                self.llm._advance(row)
                if len(row.ids) >= req.max_new_tokens:
                    row.done = True
            if not row.done and active.deadline is not None and time.perf_counter() >= active.deadline:
                row.done = True  # like generate's max_time: what was produced is the answer

    def _drop_finished(self) -> None:
        """Finish the rows that ended; their cache rows go at the next copy (``_compose``), which a new
        request joining would make anyway."""
        keep = [i for i, a in enumerate(self._rows) if not a.row.done]
        if len(keep) == len(self._rows):
            return
        for active in self._rows:
            if active.row.done:
                active.row.seconds = time.perf_counter() - active.started
                self.llm._flush(active.row)
                self._finish(active, None)
        live = self._live_rows()
        self._rows = [self._rows[i] for i in keep]
        self._live = [live[i] for i in keep]
        self._rows_changed()
        if not self._rows:
            self._cache, self._mask, self._live = None, None, None

    def _live_rows(self) -> list[int]:
        """The cache rows of ``self._rows``, in order (all of them until rows end)."""
        return self._live if self._live is not None else list(range(len(self._rows)))

    def _rows_changed(self) -> None:
        if self.on_rows is not None:
            self.on_rows(len(self._rows))

    def _merge(self, new: list[tuple[Any, Any]], joined: list[_Active]) -> None:
        """The new rows' caches (with their attention masks) below the running batch's; ``joined``: their rows."""
        if self._cache is None:
            import torch

            from twin_core.llm.kv_cache import growing_cache

            self._cache, self._live = growing_cache(self.llm.model.config), None
            self._mask = torch.zeros((0, 0), dtype=torch.long, device=self.llm.model.device)
        self._compose(new, joined)

    def _compose(self, new: Sequence[tuple[Any, Any]] = (), joined: Sequence[_Active] = ()) -> None:
        """The running cache without its ended rows and the leading padding no live row needs, then the
        rows of the ``new`` (cache, mask) pairs, left padded to one width: each layer copied once, into a buffer with
        room for the next decode steps (a concatenation, a row selection and the next append's move to a
        buffer with room each copied the whole cache)."""
        import torch

        from twin_core.llm.kv_cache import restack

        live = self._live_rows()
        kept = self._mask[torch.tensor(live, dtype=torch.long, device=self._mask.device)]
        unused = int((kept.sum(dim=0) == 0).long().cumprod(dim=0).sum())  # leading padding nobody needs
        masks = [kept[:, unused:]] + [mask for _, mask in new]
        width = max(m.shape[1] for m in masks)
        # the most positions a row can still append: rejected answers' 90-token budgets got half of a
        # 1,000-position width, a third of the cache's memory, for nothing
        room = max((a.job.req.max_new_tokens - len(a.row.ids) for a in [*self._rows, *joined]), default=1)
        for i, layer in enumerate(self._cache.layers):
            parts = [(layer.keys[a:b, :, unused:], layer.values[a:b, :, unused:]) for a, b in _runs(live)]
            restack(layer, parts + [(c.layers[i].keys, c.layers[i].values) for c, _ in new], width, room)
        self._mask = torch.cat([_left_padded(m, width) for m in masks], dim=0)
        self._live = None

    def _finish(self, active: _Active, error: BaseException | None) -> None:
        row = active.row
        if error is not None:
            result: Generation | BaseException = error
        elif row.cancelled:
            result = Cancelled("the client went away")
        else:
            result = Generation(
                text=row.text,
                prompt_tokens=row.prompt_tokens,
                completion_tokens=len(row.ids),
                model_version=self.llm.model_version,
                seconds=row.seconds,
            )
        try:
            active.job.done(result)
        except Exception:  # a caller's callback must not stop the loop
            log.exception("result callback failed")


def _runs(rows: list[int]) -> list[tuple[int, int]]:
    """Ascending row indices as [start, end) ranges of consecutive rows (slices, not copies)."""
    runs: list[tuple[int, int]] = []
    for r in rows:
        if runs and runs[-1][1] == r:
            runs[-1] = (runs[-1][0], r + 1)
        else:
            runs.append((r, r + 1))
    return runs


def _left_padded(mask: Any, width: int) -> Any:
    import torch

    missing = width - mask.shape[1]
    return mask if missing == 0 else torch.cat([mask.new_zeros(mask.shape[0], missing), mask], dim=1)
