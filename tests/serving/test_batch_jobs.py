"""A batch job split between engines running side by side (llm/batch_jobs.py) with the real SmolLM2:
each engine on its own thread with its share of the torch threads, results in request order, every
row's greedy text the text it gets alone, and torch's thread count put back afterwards."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from twin_core.errors import InputError

pytestmark = pytest.mark.slow

QUESTIONS = [
    "What is idempotency?",
    "Why write state last?",
    "What does a content hash tell you?",
    "How does a canary release work?",
    "Why pin a dependency?",
]


@pytest.fixture(scope="module")
def llm(llm_models_dir: Path) -> Any:
    from twin_core.llm.loading import load_local_llm
    from twin_core.settings import load_settings

    return load_local_llm(load_settings(llm_models_dir=llm_models_dir, llm_threads=1))


@pytest.fixture
def two_threads() -> Iterator[None]:
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def _req(text: str, max_new_tokens: int) -> Any:
    from twin_core.llm.local import GenRequest

    return GenRequest([{"role": "user", "content": text}], max_new_tokens)


def _record(ends: list[tuple[int, int, int]]) -> Any:
    import torch

    def on_result(i: int, result: Any) -> None:  # called in the engine thread that ran the request
        ends.append((i, threading.get_ident(), torch.get_num_threads()))

    return on_result


@pytest.mark.usefixtures("two_threads")
def test_two_engines_share_the_requests_in_order_each_on_one_thread_with_the_text_of_each_alone(llm: Any) -> None:
    import torch

    from twin_core.llm.batch_jobs import generate_all

    reqs = [_req(q, 8) for q in QUESTIONS]
    reqs.insert(3, _req("An answer of no tokens", 0))  # fails alone, in the second engine's share
    ends: list[tuple[int, int, int]] = []
    results = generate_all(llm, reqs, max_batch=2, workers=2, on_result=_record(ends))
    assert isinstance(results[3], InputError)
    texts = [r.text for i, r in enumerate(results) if i != 3]
    assert texts == [llm.chat(r.messages, max_new_tokens=8).text for i, r in enumerate(reqs) if i != 3]
    assert sorted(i for i, _, _ in ends) == [0, 1, 2, 3, 4, 5]  # each request reported once, by its own index
    engines = {i: ident for i, ident, _ in ends}
    assert engines[0] == engines[1] == engines[2] != engines[3] == engines[4] == engines[5]  # shares 0-2, 3-5
    assert {threads for _, _, threads in ends} == {1}  # each engine on one of the two threads
    assert torch.get_num_threads() == 2  # put back for the caller and the threads that start later
    assert llm._lock.acquire(blocking=False)  # released: chat can run again
    llm._lock.release()


@pytest.mark.usefixtures("two_threads")
def test_by_default_a_cpu_model_runs_one_engine_per_thread_once_each_has_eight_requests(llm: Any) -> None:
    from twin_core.llm.batch_jobs import MIN_SHARE, generate_all

    assert llm.batch_workers() == 2 and MIN_SHARE == 8
    for n, engines in ((15, 1), (16, 2)):
        ends: list[tuple[int, int, int]] = []
        results = generate_all(llm, [_req(QUESTIONS[i % 5], 1) for i in range(n)], on_result=_record(ends))
        assert all(r.completion_tokens == 1 for r in results)
        assert len({ident for _, ident, _ in ends}) == engines


def test_shares_are_consecutive_and_differ_by_one_request_at_most() -> None:
    from twin_core.llm.batch_jobs import _shares

    assert _shares(5, 2) == [range(0, 2), range(2, 5)]
    assert _shares(32, 2) == [range(0, 16), range(16, 32)]
    assert _shares(7, 3) == [range(0, 2), range(2, 4), range(4, 7)]
    assert _shares(0, 1) == [range(0, 0)]


# `llm` first: loading it converts the packaged model into llm_models_dir/PACKAGED_DIRNAME, which this test loads
@pytest.mark.usefixtures("llm", "two_threads")
def test_twin_llm_batch_engines_sets_how_many_engines_a_batch_job_runs(llm_models_dir: Path, monkeypatch) -> None:
    from twin_core.llm.batch_jobs import generate_all
    from twin_core.llm.loading import PACKAGED_DIRNAME, load_local_folder
    from twin_core.settings import load_settings

    monkeypatch.setenv("TWIN_LLM_BATCH_ENGINES", "1")  # the least memory: one key/value cache
    one = load_local_folder(load_settings(llm_models_dir=llm_models_dir), llm_models_dir / PACKAGED_DIRNAME, "one")
    assert one.batch_workers() == 1
    ends: list[tuple[int, int, int]] = []
    generate_all(one, [_req(QUESTIONS[i % 5], 1) for i in range(16)], on_result=_record(ends))
    assert len({ident for _, ident, _ in ends}) == 1 and {threads for _, _, threads in ends} == {2}


@pytest.mark.usefixtures("two_threads")
@pytest.mark.parametrize("workers", [1, 2])
def test_no_engine_thread_is_left_running_when_the_job_returns(llm: Any, workers: int, monkeypatch) -> None:
    # A result is handed over from inside a decode step: a thread still in torch code when the process
    # exits is stopped inside C++, and the process aborts (exit 134, seen after benchmarks/local_llm.py).
    from twin_core.llm import batch_jobs

    engines: list[Any] = []

    class Recorded(batch_jobs.ContinuousEngine):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            engines.append(self)

    monkeypatch.setattr(batch_jobs, "ContinuousEngine", Recorded)
    results = batch_jobs.generate_all(llm, [_req(q, 6) for q in QUESTIONS[:4]], max_batch=2, workers=workers)
    assert len(results) == 4 and not any(isinstance(r, BaseException) for r in results)
    assert len(engines) == workers
    assert [e._thread is not None and e._thread.is_alive() for e in engines] == [False] * workers
