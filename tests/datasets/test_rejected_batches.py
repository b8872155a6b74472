"""Rejected answers go through the batched engine in batches of similar prompt length, each answer
cached by (instruction, context, budget, model): a repeated request is generated once, a re-run never."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from twin_core.datasets.generate import CachedLLM, RejectedRequest


class _BatchingLLM:
    model_version = "batcher-1"

    def __init__(self) -> None:
        self.batches: list[list[int]] = []

    def count_tokens(self, text: str) -> int:
        return len(text.split())

    def truncate(self, text: str, max_tokens: int) -> str:
        return " ".join(text.split()[:max_tokens])

    def generate_batch(self, reqs: list[Any]) -> list[Any]:
        from twin_core.llm.base import Generation

        self.batches.append([r.max_new_tokens for r in reqs])
        return [Generation(f"answer {r.max_new_tokens}", 1, 1, self.model_version, 0.0) for r in reqs]


def test_misses_are_batched_by_prompt_length_and_cached(tmp_path: Path) -> None:
    from twin_core.settings import load_settings
    from twin_core.stores.artifacts import open_artifact_store

    store = open_artifact_store(load_settings(home=tmp_path / "twin"))
    # budgets 1..20 follow the prompt lengths (context of i words), given in reverse order
    requests = [RejectedRequest(f"question {i}", ("word " * i,), ("https://x/1",), i) for i in range(20, 0, -1)]
    requests.append(requests[0])  # the same request twice: generated once
    llm = _BatchingLLM()
    answers = CachedLLM(llm, store).rejected(requests, "Ada", batch_size=8)
    assert answers == [f"answer {r.max_new_tokens}" for r in requests]
    assert llm.batches == [list(range(1, 9)), list(range(9, 17)), list(range(17, 21))]
    again = CachedLLM(llm, store)
    assert again.rejected(requests, "Ada") == answers
    assert (again.calls, again.hits, len(llm.batches)) == (0, 20, 3)
    other_context = RejectedRequest("question 20", ("other text",), (), 20)
    assert CachedLLM(llm, store).rejected([other_context], "Ada") == ["answer 20"]
    assert len(llm.batches) == 4  # another context is another prompt: not served from the cache


def test_a_local_model_answers_through_the_engine_each_answer_cached_as_it_ends(
    tmp_path: Path, request: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The local model's misses run through the continuous engine in the order their prompts read (rows
    join as others end, a prompt's start shared with the one before prefilled once): each answer is the
    text ``chat`` gives alone, and each is in the cache (a re-run makes no call)."""
    from twin_core.llm.loading import load_local_llm
    from twin_core.settings import load_settings
    from twin_core.stores.artifacts import open_artifact_store

    models = Path(request.config.cache.mkdir("twin-llm-models"))
    settings = load_settings(home=tmp_path / "twin", llm_models_dir=models, llm_threads=1)
    llm = load_local_llm(settings)
    store = open_artifact_store(settings)
    requests = [
        RejectedRequest(q, (c,), ("https://ada.example/a",), n)
        for q, c, n in [
            ("Why do random IDs break upserts?", "Deterministic ids make a re-run an update.", 6),
            ("What is a content hash for?", "A content hash says whether a document changed.", 9),
            ("How should a pipeline resume?", "State is written last, so a killed run resumes.", 4),
        ]
    ]
    import twin_core.llm.batch_jobs as batch_jobs

    sent: list[int] = []
    engine = batch_jobs.generate_all

    def recorded(llm: Any, reqs: list[Any], **kwargs: Any) -> Any:
        sent.extend(r.max_new_tokens for r in reqs)
        return engine(llm, reqs, **kwargs)

    monkeypatch.setattr(batch_jobs, "generate_all", recorded)
    cached = CachedLLM(llm, store)
    answers = cached.rejected(requests, "Ada Quillfeather", batch_size=2)
    assert sent == [9, 6, 4]  # as the prompts read (same link, then the passages' text): alike starts adjacent
    alone = [llm.chat(r.messages("Ada Quillfeather", llm), max_new_tokens=r.max_new_tokens).text for r in requests]
    assert answers == alone and all(answers)
    assert (cached.calls, cached.hits) == (3, 0)
    again = CachedLLM(llm, store)
    assert again.rejected(requests, "Ada Quillfeather") == answers and (again.calls, again.hits) == (0, 3)
