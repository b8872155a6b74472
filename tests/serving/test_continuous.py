"""Iteration-level batching (llm/continuous.py) with the real SmolLM2: a request joins a running batch at
the next decode step, leaves it when done, and every row's greedy text is the text it gets alone."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import pytest

from twin_core.errors import InputError

pytestmark = pytest.mark.slow

LONG = ("Tell me a long story about a data engineer and a lighthouse.", 40)
SHORT = ("What is idempotency?", 6)


@pytest.fixture(scope="module")
def llm(llm_models_dir: Path) -> Any:
    from twin_core.llm.loading import load_local_llm
    from twin_core.settings import load_settings

    return load_local_llm(load_settings(llm_models_dir=llm_models_dir, llm_threads=1))


def _messages(text: str) -> list[dict[str, str]]:
    return [{"role": "user", "content": text}]


def test_a_request_joins_the_running_batch_and_leaves_it_when_done(llm: Any) -> None:
    from twin_core.llm.continuous import ContinuousEngine
    from twin_core.llm.local import GenRequest

    long_alone = llm.chat(_messages(LONG[0]), max_new_tokens=LONG[1])
    short_alone = llm.chat(_messages(SHORT[0]), max_new_tokens=SHORT[1])
    assert long_alone.completion_tokens == LONG[1]  # the long row runs its whole budget
    engine = ContinuousEngine(llm, max_batch=8)
    finished: list[str] = []
    results: dict[str, Any] = {}
    pieces: list[str] = []

    ended = threading.Event()

    def done(name: str) -> Any:
        def record(result: Any) -> None:
            finished.append(name)
            results[name] = result
            if name == "long":
                ended.set()

        return record

    def on_text(piece: str) -> None:  # engine thread: the short request arrives while the long one decodes
        pieces.append(piece)
        if len(pieces) == 2:
            engine.submit(GenRequest(_messages(SHORT[0]), SHORT[1]), done("short"))

    engine.submit(GenRequest(_messages(LONG[0]), LONG[1], on_text=on_text), done("long"))
    assert ended.wait(timeout=600)
    engine.close()
    assert finished == ["short", "long"]  # the short one left the batch before the long one ended
    assert results["long"].text == long_alone.text and results["short"].text == short_alone.text
    assert results["short"].completion_tokens == short_alone.completion_tokens
    assert engine.max_rows_seen == 2
    # it rode along inside the long row's decode steps: not one step more than the long row alone needs
    assert engine.steps == LONG[1] - 1


def test_requests_of_different_lengths_give_their_text_alone(llm: Any) -> None:
    from twin_core.llm.continuous import ContinuousEngine
    from twin_core.llm.local import GenRequest

    prompts = [("Hi", 4), SHORT, ("Why do random IDs break upserts when a job is rerun?", 12), LONG]
    alone = [llm.chat(_messages(p), max_new_tokens=n) for p, n in prompts]
    engine = ContinuousEngine(llm, max_batch=2)  # rows queue for a free slot, then join
    together = engine.run_all(
        [GenRequest(_messages(p), n) for p, n in prompts]
        + [GenRequest(_messages("word " * 9000), 4)]  # longer than the context: its own error only
    )
    engine.close()
    for a, b in zip(alone, together, strict=False):
        assert b.text == a.text and b.completion_tokens == a.completion_tokens
        assert b.prompt_tokens == a.prompt_tokens and b.model_version == llm.model_version
    assert isinstance(together[-1], InputError) and "exceeds the model's context" in str(together[-1])
    assert engine.max_rows_seen == 2
    with pytest.raises(RuntimeError, match="no longer served"):
        engine.submit(GenRequest(_messages("Hi"), 2), lambda result: None)


@pytest.fixture(scope="module")
def author_prompts(llm: Any) -> tuple[list[Any], list[int], int, list[Any]]:
    """Four twin prompts (the author's system prompt, then a question), their budgets, the number of prompt
    tokens they all share (the system block and the user turn's opening) and each one's answer alone."""
    from twin_core.llm.prompt import system_prompt

    system = {"role": "system", "content": system_prompt("Ada Quillfeather")}
    questions = [(SHORT[0], 8), ("Why do random IDs break upserts?", 10), ("Hi", 6), (LONG[0], 12)]
    prompts = [[system, {"role": "user", "content": q}] for q, _ in questions]
    encoded = [llm.encode(p, 1) for p in prompts]
    shared = next(i for i, (a, b) in enumerate(zip(*encoded[:2], strict=False)) if a != b)
    assert system["content"] in llm.tokenizer.decode(encoded[0][:shared])  # the whole system block is shared
    assert all(e[:shared] == encoded[0][:shared] for e in encoded)
    budgets = [n for _, n in questions]
    alone = [llm.chat(p, max_new_tokens=n) for p, n in zip(prompts, budgets, strict=True)]
    return prompts, budgets, shared, alone


def test_requests_arriving_together_prefill_their_shared_start_once(llm: Any, author_prompts: Any) -> None:
    from twin_core.llm.continuous import ContinuousEngine
    from twin_core.llm.local import GenRequest

    prompts, budgets, shared, alone = author_prompts
    prefills: list[tuple[int, int]] = []
    engine = ContinuousEngine(llm, max_batch=8, on_prefill=lambda computed, cached: prefills.append((computed, cached)))
    together = engine.run_all([GenRequest(p, n) for p, n in zip(prompts, budgets, strict=True)])
    assert len(engine.prefixes) == 1 and engine.prefixes.hits == 4  # prefilled once, used by all four
    # each row computes its own tokens after the shared start, the four short rests in one forward
    assert prefills == [(len(llm.encode(p, 1)) - shared, shared) for p in prompts]
    assert engine.prefill_passes == 1
    again = engine.run_all([GenRequest(prompts[2], budgets[2])])  # a later request reuses it
    engine.close()
    assert engine.prefixes.hits == 5 and engine.prefixes.reused_tokens == 5 * shared
    for a, b in zip(alone, together + again, strict=False):
        assert b.text == a.text and b.completion_tokens == a.completion_tokens and b.prompt_tokens == a.prompt_tokens
    assert again[0].text == alone[2].text


def test_one_request_at_a_time_learns_the_shared_start_from_two_prompts(llm: Any, author_prompts: Any) -> None:
    from twin_core.llm.continuous import ContinuousEngine
    from twin_core.llm.local import GenRequest

    prompts, budgets, shared, alone = author_prompts
    engine = ContinuousEngine(llm, max_batch=8)
    out = []
    for i, (p, n) in enumerate(zip(prompts, budgets, strict=True)):
        out += engine.run_all([GenRequest(p, n)])
        # learnt when the second prompt came (sliced from the first one's prefill), used from the second on
        assert (len(engine.prefixes), engine.prefixes.hits) == ((0, 0), (1, 1), (1, 2), (1, 3))[i]
    engine.close()
    assert engine.prefixes.reused_tokens == 3 * shared
    assert [b.text for b in out] == [a.text for a in alone]
    no_cache = ContinuousEngine(llm, max_batch=8, prefix_cache=False)
    assert no_cache.run_all([GenRequest(prompts[0], 2)])[0].text and no_cache.prefixes is None
    no_cache.close()


def test_a_prompt_sharing_a_passage_with_the_previous_one_prefills_only_what_follows(llm: Any) -> None:
    """Two questions on the same retrieved passage: the second prompt's start, up to its question, comes
    from the first one's states; its answer is the one it gets alone."""
    from twin_core.llm.continuous import ContinuousEngine
    from twin_core.llm.local import GenRequest
    from twin_core.llm.prompt import system_prompt

    system = {"role": "system", "content": system_prompt("Ada Quillfeather")}
    passage = "<context>\nState is written last, so a killed run resumes where it stopped. " * 6 + "</context>\n"
    prompts = [[system, {"role": "user", "content": passage + q}] for q in ("Why write state last?", "What resumes?")]
    encoded = [llm.encode(p, 1) for p in prompts]
    common = next(i for i, (a, b) in enumerate(zip(*encoded, strict=False)) if a != b)
    alone = [llm.chat(p, max_new_tokens=6) for p in prompts]
    prefills: list[tuple[int, int]] = []
    engine = ContinuousEngine(llm, max_batch=8, on_prefill=lambda computed, cached: prefills.append((computed, cached)))
    out = [engine.run_all([GenRequest(p, 6)])[0] for p in prompts]
    engine.close()
    assert common > 100 and prefills == [(len(encoded[0]), 0), (len(encoded[1]) - common, common)]
    assert [b.text for b in out] == [a.text for a in alone]


def test_a_prefill_that_fails_answers_its_requests_with_the_error(llm: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """Out of memory in a prefill, say: the requests it admitted get the error (none waits forever), and
    the engine serves the next request."""
    from twin_core.llm.continuous import ContinuousEngine
    from twin_core.llm.local import GenRequest

    engine = ContinuousEngine(llm, max_batch=8)
    prefill = engine._prefill

    def failing(*args: Any) -> Any:
        raise MemoryError("no room for the prompt")

    monkeypatch.setattr(engine, "_prefill", failing)
    results: list[Any] = []
    ended = threading.Event()

    def done(result: Any) -> None:
        results.append(result)
        ended.set()

    engine.submit(GenRequest(_messages(SHORT[0]), 2), done)
    assert ended.wait(timeout=120)
    assert isinstance(results[0], MemoryError) and "no room" in str(results[0])
    monkeypatch.setattr(engine, "_prefill", prefill)
    assert engine.run_all([GenRequest(_messages(SHORT[0]), 2)])[0].text
    engine.close()


def test_long_prompts_arriving_together_are_prefilled_alone_and_short_ones_together(llm: Any) -> None:
    """Two prompts with a long passage each and two one-line questions, all arriving at once: each long one
    gets its own forward (nothing padded), the short ones share one; every answer is the one it gets alone."""
    from twin_core.llm.continuous import SHORT_REST, ContinuousEngine
    from twin_core.llm.local import GenRequest
    from twin_core.llm.prompt import system_prompt

    system = {"role": "system", "content": system_prompt("Ada Quillfeather")}
    facts = ("State is written last. " * 12, "Ids are hashes. " * 20)
    passages = [f"<context>\n{fact}\n</context>\nWhy?" for fact in facts]
    questions = [passages[0], "Hi", passages[1], SHORT[0]]
    prompts = [[system, {"role": "user", "content": q}] for q in questions]
    alone = [llm.chat(p, max_new_tokens=5) for p in prompts]
    prefills: list[tuple[int, int]] = []
    engine = ContinuousEngine(llm, max_batch=8, on_prefill=lambda computed, cached: prefills.append((computed, cached)))
    together = engine.run_all([GenRequest(p, 5) for p in prompts])
    engine.close()
    computed = [c for c, _ in prefills]
    assert computed[0] > SHORT_REST and computed[1] > SHORT_REST and max(computed[2:]) <= SHORT_REST
    assert len(prefills) == 4 and engine.prefill_passes == 3
    assert [b.text for b in together] == [a.text for a in alone]
    assert [b.prompt_tokens for b in together] == [a.prompt_tokens for a in alone]


def test_the_cache_keeps_room_for_the_most_tokens_a_row_can_still_add(llm: Any) -> None:
    """Budgets of 6 and 40 tokens: the buffer the rows are copied into has room for 40 positions (not
    half its width), and each step fills one of them in place."""
    from twin_core.llm.continuous import ContinuousEngine
    from twin_core.llm.local import GenRequest

    free: list[int] = []

    def on_step(rows: int) -> None:  # engine thread, after the step's append
        keys, filled = engine._cache.layers[0].__dict__["_keys_buffer"]
        free.append(keys.shape[-2] - filled)

    engine = ContinuousEngine(llm, max_batch=8, on_step=on_step)
    results = engine.run_all([GenRequest(_messages(SHORT[0]), 6), GenRequest(_messages(LONG[0]), LONG[1])])
    engine.close()
    assert [r.completion_tokens for r in results] == [SHORT[1], LONG[1]]
    # room for 40 from the join; the step after the short row ended recopies with room for the 34 the long
    # row can still add, and fills one
    assert free == [39, 38, 37, 36, 35] + list(range(33, 33 - (LONG[1] - 1 - 5), -1))
