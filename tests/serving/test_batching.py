"""Batched generation with the real tiny model: same text as alone, isolated failures, cancellation."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path
from typing import Any

import pytest

from twin_core.errors import InputError

pytestmark = pytest.mark.slow

PROMPTS = [
    ("What is idempotency?", 10),
    ("Explain HNSW recall tuning with ef and M in one paragraph.", 16),
    ("Hi", 4),
    ("Why do random IDs break upserts when a job is rerun?", 12),
]


@pytest.fixture(scope="module")
def llm(llm_models_dir: Path) -> Any:
    from twin_core.llm.loading import load_local_llm
    from twin_core.settings import load_settings

    return load_local_llm(load_settings(llm_models_dir=llm_models_dir, llm_threads=1))


def _messages(text: str) -> list[dict[str, str]]:
    return [{"role": "user", "content": text}]


def _batch_sizes(version: str) -> dict[str, float]:
    """The ``twin_batch_size`` histogram of ``version``: batches, batches by size (cumulative buckets), sizes' sum."""
    from prometheus_client import REGISTRY

    def sample(name: str, **labels: str) -> float:
        return REGISTRY.get_sample_value(name, {"model_version": version, **labels}) or 0.0

    return {
        "batches": sample("twin_batch_size_count"),
        "of at most 3": sample("twin_batch_size_bucket", le="3.0"),
        "of at most 4": sample("twin_batch_size_bucket", le="4.0"),
        "sum": sample("twin_batch_size_sum"),
    }


@pytest.fixture(params=["window", "continuous"])
def make_batcher(request: pytest.FixtureRequest) -> Any:
    """Either batcher, with the options the window one needs (the continuous one ignores the window)."""
    from twin_core.serving.batching import Batcher, ContinuousBatcher

    cls = Batcher if request.param == "window" else ContinuousBatcher
    return lambda llm, window_ms=200: cls(llm, max_batch=8, window_ms=window_ms)


def test_batch_gives_each_request_its_own_answer_as_alone(llm: Any) -> None:
    from twin_core.serving.batching import Batcher

    alone = [llm.chat(_messages(p), max_new_tokens=n) for p, n in PROMPTS]

    async def together() -> list[Any]:
        batcher = Batcher(llm, max_batch=8, window_ms=200)
        return await asyncio.gather(*(batcher.generate(_messages(p), max_new_tokens=n) for p, n in PROMPTS))

    before = _batch_sizes(llm.model_version)
    batched = asyncio.run(together())
    after = _batch_sizes(llm.model_version)
    # one batch of 4 (four batches of 1, or two of 2, would add 4 to the sum too)
    assert {k: after[k] - before[k] for k in before} == {"batches": 1, "of at most 3": 0, "of at most 4": 1, "sum": 4}
    for (_, n), a, b in zip(PROMPTS, alone, batched, strict=True):
        assert b.text == a.text  # greedy: identical
        assert b.completion_tokens == a.completion_tokens <= n
        assert b.prompt_tokens == a.prompt_tokens
        assert b.model_version == llm.model_version
    assert len({b.text for b in batched}) == len(PROMPTS)  # really different answers


def test_one_failing_request_does_not_fail_its_batch(llm: Any, make_batcher: Any) -> None:
    ok_alone = llm.chat(_messages("Hi"), max_new_tokens=4)

    async def together() -> list[Any]:
        batcher = make_batcher(llm)
        return await asyncio.gather(
            batcher.generate(_messages("Hi"), max_new_tokens=4),
            batcher.generate(_messages("word " * 9000), max_new_tokens=4),  # longer than the context
            batcher.generate([{"role": "nobody", "content": 1}], max_new_tokens=4),  # type: ignore[list-item]
            return_exceptions=True,
        )

    ok, too_long, bad = asyncio.run(together())
    assert ok.text == ok_alone.text and ok.completion_tokens == ok_alone.completion_tokens
    assert isinstance(too_long, InputError) and "exceeds the model's context of 8192 tokens" in str(too_long)
    assert isinstance(bad, InputError)


def test_stop_strings_and_stream_pieces(llm: Any, make_batcher: Any) -> None:
    from twin_core.llm.base import Generation

    full = llm.chat(_messages("What is idempotency?"), max_new_tokens=12).text
    stop = full.split()[3]

    async def run() -> tuple[list[str], Any, Any]:
        batcher = make_batcher(llm)
        pieces: list[str] = []
        final = None

        async def streamed() -> None:
            nonlocal final
            async for piece in batcher.stream(_messages("What is idempotency?"), max_new_tokens=12):
                if isinstance(piece, Generation):
                    final = piece
                else:
                    pieces.append(piece)

        _, stopped = await asyncio.gather(
            streamed(), batcher.generate(_messages("What is idempotency?"), max_new_tokens=12, stop=(stop,))
        )
        return pieces, final, stopped

    pieces, final, stopped = asyncio.run(run())
    assert len(pieces) > 1 and "".join(pieces) == final.text == full
    assert stopped.text == full[: full.index(stop)].rstrip() and stop not in stopped.text


def test_a_cancelled_request_leaves_its_batch_and_frees_its_row(llm: Any, make_batcher: Any) -> None:
    from twin_core.serving import metrics

    async def run() -> Any:
        batcher = make_batcher(llm, window_ms=50)
        loop = asyncio.get_running_loop()
        generating, first_piece = asyncio.Event(), threading.Event()

        def on_text(piece: str) -> None:  # called in the generation thread: tells the loop once, while it waits
            if not first_piece.is_set():
                first_piece.set()
                loop.call_soon_threadsafe(generating.set)

        long = asyncio.ensure_future(
            batcher.generate(_messages("Tell me a long story."), max_new_tokens=400, on_text=on_text)
        )
        short = asyncio.ensure_future(batcher.generate(_messages("Hi"), max_new_tokens=4))
        await generating.wait()  # the long row has produced its first piece: both are generating in one batch
        long.cancel()  # what the gateway does when the client disconnects
        done = await short
        # the batch ends as soon as the long row sees its cancel flag: the next request runs right away
        after = await batcher.generate(_messages("Hi"), max_new_tokens=2)
        return done, after, long

    cancelled_before = metrics.BATCH_CANCELLED.labels(llm.model_version, "client_gone")._value.get()
    done, after, long = asyncio.run(run())
    assert long.cancelled() and done.completion_tokens <= 4 and after.completion_tokens <= 2
    assert metrics.BATCH_CANCELLED.labels(llm.model_version, "client_gone")._value.get() == cancelled_before + 1


def test_the_predictors_teardown_waits_for_its_decode_thread(llm: Any, llm_models_dir: Path) -> None:
    # KServe's stop() at the end of `twin serve`: a decode thread still in torch code when the process
    # exits is stopped inside C++, and the process aborts (exit 134)
    from twin_core.serving.batching import ContinuousBatcher
    from twin_core.serving.predictor import TwinPredictor
    from twin_core.settings import load_settings

    predictor = TwinPredictor("twin-llm", load_settings(llm_models_dir=llm_models_dir, serve_batch_mode="continuous"),
                              llm=llm)  # fmt: skip
    assert predictor.load()
    batcher = predictor.pool.base.batcher
    assert isinstance(batcher, ContinuousBatcher)

    async def ask() -> Any:
        return await batcher.generate(_messages("Hi"), max_new_tokens=4)

    assert asyncio.run(ask()).text == llm.chat(_messages("Hi"), max_new_tokens=4).text
    thread = batcher.engine._thread
    assert thread is not None and thread.is_alive()  # the engine waits for more work
    predictor.stop()
    assert not thread.is_alive() and not predictor.ready
    with pytest.raises(RuntimeError, match="is no longer served"):
        asyncio.run(ask())


def test_a_retired_version_answers_its_requests_before_the_server_exits(
    llm: Any, llm_models_dir: Path, twin_home: Path, tmp_path: Path
) -> None:
    # A version the registry stops routing to is closed by the registry poll; a SIGTERM during its drain ends
    # the server's event loop, and `asyncio.run` must not return (the process then exits) while its decode
    # thread is still in torch code (exit 134) or before its requests are answered.
    import shutil

    from twin_core.llm.local import GenRequest
    from twin_core.serving.predictor import TwinPredictor
    from twin_core.settings import load_settings
    from twin_core.stores.registry import open_registry

    author = "Ada Quillfeather"
    settings = load_settings(llm_models_dir=llm_models_dir, serve_batch_mode="continuous")
    folder = tmp_path / "v1"
    shutil.copytree(llm_models_dir / "smollm2-135m-instruct", folder / "merged")
    registry = open_registry(settings)
    v1 = registry.register(author, folder, {"base_model": "smollm2"})
    registry.set_stage(v1.ref, "production", reason="test")
    predictor = TwinPredictor("twin-llm", settings, llm=llm, authors=[author])
    assert predictor.load()
    served = predictor.pool.choose(author, "c-0")
    assert served.ref == v1.ref
    answered: list[Any] = []
    finished = threading.Event()

    def done(result: Any) -> None:
        answered.append(result)
        finished.set()

    served.batcher.engine.submit(GenRequest(_messages("Tell me a long story."), max_new_tokens=48), done)
    registry.archive(v1.ref, "test")
    predictor.pool.refresh([author])  # v1 leaves the routes: retired

    async def poll_then_sigterm() -> None:
        predictor.close_retired()  # what the registry poll does; the loop ends right after

    asyncio.run(poll_then_sigterm())
    assert finished.is_set() and answered[0].completion_tokens == 48  # answered in full before run() returned
    assert not served.batcher.engine._thread.is_alive()
    predictor.stop()
