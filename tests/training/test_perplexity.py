"""Perplexity with the shared prompt start run once: the same numbers as scoring each item on its own with
the model's own loss, and exactly the tokens of that start saved."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pytest


@pytest.fixture(scope="module")
def smollm(llm_models_dir: Path) -> Any:
    from twin_core.llm.loading import load_local_llm
    from twin_core.settings import load_settings

    return load_local_llm(load_settings(llm_models_dir=llm_models_dir, llm_threads=1))


def _reference(model: Any, tokenizer: Any, prompt: str, completion: str) -> float:
    """The item alone, full sequence, the model's own mean loss over the completion's tokens."""
    import torch

    p_ids = tokenizer(prompt, add_special_tokens=False)["input_ids"]
    ids = torch.tensor([p_ids + tokenizer(completion, add_special_tokens=False)["input_ids"]])
    labels = ids.clone()
    labels[:, : len(p_ids)] = -100
    with torch.inference_mode():
        return math.exp(float(model(input_ids=ids, labels=labels).loss))


def test_the_shared_start_is_run_once_and_changes_no_perplexity(smollm: Any) -> None:
    from twin_core.llm.perplexity import perplexities, perplexity
    from twin_core.llm.prompt import system_prompt

    tok = smollm.tokenizer
    system = system_prompt("Ada Quillfeather")
    items = [
        (
            tok.apply_chat_template(
                [{"role": "system", "content": system}, {"role": "user", "content": q}],
                tokenize=False,
                add_generation_prompt=True,
            ),
            a,
        )
        for q, a in [
            ("Why deterministic ids?", "Because a re-run must update, never duplicate."),
            ("What does a content hash buy?", "It tells a changed document from an unchanged one."),
            ("How does a killed run resume?", "State goes last, so the next run starts where it stopped."),
        ]
    ]
    seen: list[int] = []
    hook = smollm.model.model.embed_tokens.register_forward_hook(lambda m, args, out: seen.append(args[0].shape[1]))
    try:
        each = perplexities(smollm.model, tok, items, max_length=512)
    finally:
        hook.remove()
    for got, (prompt, completion) in zip(each, items, strict=True):
        assert got == pytest.approx(_reference(smollm.model, tok, prompt, completion), rel=1e-4)
    lengths = [len(tok(p + c, add_special_tokens=False)["input_ids"]) for p, c in items]
    shared = seen[0]
    assert system in tok.decode(tok(items[0][0], add_special_tokens=False)["input_ids"][:shared])
    assert seen == [shared] + [n - shared for n in lengths]  # the start once, then only each item's rest
    pooled = perplexity(smollm.model, tok, items, max_length=512)
    scored = [len(tok(c, add_special_tokens=False)["input_ids"]) for _, c in items]
    expected = math.exp(sum(math.log(p) * n for p, n in zip(each, scored, strict=True)) / sum(scored))
    assert pooled == pytest.approx(expected, rel=1e-9)
    assert perplexities(smollm.model, tok, ["", "one"], max_length=512) == [None, None]  # nothing to score


def test_a_completion_longer_than_max_length_scores_every_kept_token_but_the_first(smollm: Any) -> None:
    import torch

    from twin_core.llm.perplexity import perplexities

    tok = smollm.tokenizer
    prompt, completion = "Question?", "word " * 100
    ids = tok(prompt, add_special_tokens=False)["input_ids"] + tok(completion, add_special_tokens=False)["input_ids"]
    kept = torch.tensor([ids[-64:]])  # the prompt is cut away: 63 tokens have a token before them
    with torch.inference_mode():
        expected = math.exp(float(smollm.model(input_ids=kept, labels=kept.clone()).loss))
    assert perplexities(smollm.model, tok, [(prompt, completion)], max_length=64) == [pytest.approx(expected, rel=1e-4)]
