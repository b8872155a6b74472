"""A batch job's requests (evaluation answers, rejected answers) through the continuous engine: rows
join as others end, the prompt start they share is prefilled once, and on a CPU the requests are split
between engines that run side by side, each on its own thread with its share of the torch threads.

Why several engines on a CPU: a decode step is some 900 small operations. On two threads, every one of
them forks and joins the OpenMP team, and the step's Python runs on one core while the other waits.
Two single-threaded engines keep both cores on rows of their own: 32 rejected answers on this 2-core
machine took 43.1-50.9 s against 59.7-65.9 s for one engine on two threads, in alternated runs, with the
same text 32/32 (docs/benchmarks.md). On an accelerator, one engine.
"""

from __future__ import annotations

import logging
import threading
from concurrent.futures import ThreadPoolExecutor

from twin_core.llm.base import Generation
from twin_core.llm.continuous import ContinuousEngine, Result
from twin_core.llm.local import GenRequest, LocalLLM
from twin_core.progress import ProgressFactory, silent

log = logging.getLogger(__name__)

MIN_SHARE = 8  # requests an engine gets at least: fewer rows per step read the weights for too few tokens


def generate_all(
    llm: LocalLLM,
    reqs: list[GenRequest],
    *,
    max_batch: int = 8,
    workers: int | None = None,
    timeout_s: float | None = None,
    on_result: Result | None = None,
    progress: ProgressFactory = silent,
    desc: str = "answers",
) -> list[Generation | BaseException]:
    """Every request through ``workers`` engines (default: ``llm.batch_workers()``, at most one per
    ``MIN_SHARE`` requests), each on a consecutive share of the requests (prompts that start alike stay
    together for the prefix cache) and at most ``max_batch`` rows. Results in order; a failed request gets
    its exception and does not fail the others. ``on_result`` gets each request's index and result as it
    ends (one call at a time, from an engine thread); the bar advances with it."""
    if workers is None:
        workers = min(llm.batch_workers(), len(reqs) // MIN_SHARE)
    shares = _shares(len(reqs), max(1, min(workers, len(reqs))))
    bar = progress(total=len(reqs), desc=desc, unit="answer")
    lock = threading.Lock()

    def ended(i: int, result: Generation | BaseException) -> None:
        with lock:
            if on_result is not None:
                on_result(i, result)
            bar.update(1)

    try:
        if len(shares) == 1:
            return _run(ContinuousEngine(llm, max_batch=max_batch), reqs, timeout_s, ended)
        return _side_by_side(llm, reqs, shares, max_batch, timeout_s, ended)
    finally:
        bar.close()


def _side_by_side(
    llm: LocalLLM, reqs: list[GenRequest], shares: list[range], max_batch: int, timeout_s: float | None, ended: Result
) -> list[Generation | BaseException]:
    """One engine per share, each with its own thread and turn lock; the model's lock is held for the
    whole job, so no other call decodes on it meanwhile."""
    import torch

    threads = torch.get_num_threads()
    each = max(1, threads // len(shares))
    log.info("%d requests on %d engines side by side, %d torch thread(s) each", len(reqs), len(shares), each)
    engines = [ContinuousEngine(llm, max_batch=max_batch, threads=each, lock=threading.Lock()) for _ in shares]

    def run(engine: ContinuousEngine, share: range) -> list[Generation | BaseException]:
        return _run(engine, reqs[share.start : share.stop], timeout_s, lambda i, r: ended(share.start + i, r))

    try:
        with llm._lock, ThreadPoolExecutor(len(shares), thread_name_prefix="batch-job") as pool:
            return [r for part in pool.map(run, engines, shares) for r in part]
    finally:
        # an engine thread's count is also torch's default for threads that start later: put it back
        torch.set_num_threads(threads)


def _run(
    engine: ContinuousEngine, reqs: list[GenRequest], timeout_s: float | None, ended: Result
) -> list[Generation | BaseException]:
    try:
        results = engine.run_all(reqs, timeout_s=timeout_s, on_result=ended)
    except BaseException:  # interrupted: do not wait for the rows still running
        engine.close()
        raise
    engine.close(wait=True)  # no torch code left running on its thread once the job returns
    return results


def _shares(n: int, parts: int) -> list[range]:
    """``0..n`` cut into ``parts`` consecutive ranges whose sizes differ by one at most."""
    bounds = [n * k // parts for k in range(parts + 1)]
    return [range(a, b) for a, b in zip(bounds, bounds[1:], strict=False)]
