"""Perplexity of a causal LM on texts: the "moved toward the author" number of training and evaluation.

Two savings, neither of which changes what is scored: the prompt start that every (prompt, completion)
item shares (the author's system prompt and the chat template around it) is run through the model once
and its key/value states reused, and the vocabulary projection is computed only where a token is scored.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from twin_core.llm.kv_cache import cache_argument

Item = str | tuple[str, str]
MIN_SHARED = 32  # a shorter common start is not worth a separate forward


def perplexity(model: Any, tokenizer: Any, texts: Sequence[Item], *, max_length: int = 1024) -> float | None:
    """Token-weighted perplexity ``exp(mean NLL)`` over ``texts``.

    An item is either a string (every token after the first is scored) or a ``(prompt, completion)``
    pair: the prompt is context only and the completion's tokens are scored, which is the held-out
    "author text given the served prompt" number. Sequences longer than ``max_length`` keep their
    last ``max_length`` tokens. Returns None when nothing is scored.
    """
    sums = [s for s in nll_sums(model, tokenizer, texts, max_length=max_length) if s is not None]
    tokens = sum(n for _, n in sums)
    return math.exp(sum(nll for nll, _ in sums) / tokens) if tokens else None


def perplexities(model: Any, tokenizer: Any, texts: Sequence[Item], *, max_length: int = 1024) -> list[float | None]:
    """The perplexity of each item on its own (None where nothing is scored)."""
    return [
        None if s is None else math.exp(s[0] / s[1]) for s in nll_sums(model, tokenizer, texts, max_length=max_length)
    ]


def nll_sums(
    model: Any, tokenizer: Any, texts: Sequence[Item], *, max_length: int = 1024
) -> list[tuple[float, int] | None]:
    """Per item: (summed negative log-likelihood of its scored tokens, their number), or None."""
    import torch

    encoded = [_encode(tokenizer, item, max_length) for item in texts]
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    try:
        with torch.inference_mode():
            shared, layers = _shared_start(model, [e for e in encoded if e is not None and e[2]])
            return [
                None if e is None else _score(model, e[0], e[1], shared if e[2] else 0, layers, device) for e in encoded
            ]
    finally:
        model.train(was_training)


def _encode(tokenizer: Any, item: Item, max_length: int) -> tuple[list[int], int, bool] | None:
    """(ids, number of scored tokens at the end, whether the ids start with the whole prompt)."""
    prompt, completion = ("", item) if isinstance(item, str) else item
    p_ids = tokenizer(prompt, add_special_tokens=False)["input_ids"] if prompt else []
    c_ids = tokenizer(completion, add_special_tokens=False)["input_ids"]
    ids = (p_ids + c_ids)[-max_length:]
    n_scored = min(len(c_ids), len(ids) - 1)  # the first token kept has nothing before it to predict it
    if n_scored <= 0:
        return None
    return ids, n_scored, bool(p_ids) and len(p_ids) + len(c_ids) <= max_length


def _shared_start(model: Any, encoded: list[tuple[list[int], int, bool]]) -> tuple[int, Any]:
    """The prompt start all items share (never a scored token nor the one before it), run once."""
    if len(encoded) < 2:
        return 0, None
    from twin_core.llm.prefix_cache import run_prefix, shared_length

    n = shared_length([ids for ids, _, _ in encoded], min(len(ids) - scored - 1 for ids, scored, _ in encoded))
    if n < MIN_SHARED:
        return 0, None
    return n, run_prefix(model, encoded[0][0][:n])


def _score(model: Any, ids: list[int], n_scored: int, shared: int, layers: Any, device: Any) -> tuple[float, int]:
    import torch

    from twin_core.llm.prefix_cache import cache_from

    cache = cache_from(model, layers, 1) if shared else None
    # logits only where they predict a scored token: the last n_scored + 1 positions, minus the final one
    input_ids = torch.tensor([ids[shared:]], dtype=torch.long, device=device)
    out = model(input_ids=input_ids, **cache_argument(model, cache), use_cache=shared > 0, logits_to_keep=n_scored + 1)
    logits = out.logits[0, :-1].float()
    targets = torch.tensor(ids[-n_scored:], dtype=torch.long, device=device)
    return float(torch.nn.functional.cross_entropy(logits, targets, reduction="sum")), n_scored
