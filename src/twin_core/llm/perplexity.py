"""Perplexity of a causal LM on texts: the "moved toward the author" number of training and evaluation."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any


def perplexity(
    model: Any,
    tokenizer: Any,
    texts: Sequence[str | tuple[str, str]],
    *,
    max_length: int = 1024,
) -> float | None:
    """Token-weighted perplexity ``exp(mean NLL)`` over ``texts``.

    An item is either a string (every token after the first is scored) or a ``(prompt, completion)``
    pair: the prompt is context only and the completion's tokens are scored, which is the held-out
    "author text given the served prompt" number. Sequences longer than ``max_length`` keep their
    last ``max_length`` tokens. Returns None when nothing is scored.
    """
    import torch

    total_nll = 0.0
    total_tokens = 0
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    try:
        with torch.inference_mode():
            for item in texts:
                prompt, completion = ("", item) if isinstance(item, str) else item
                p_ids = tokenizer(prompt, add_special_tokens=False)["input_ids"] if prompt else []
                c_ids = tokenizer(completion, add_special_tokens=False)["input_ids"]
                ids = (p_ids + c_ids)[-max_length:]
                n_scored = min(len(c_ids), len(ids)) - (0 if prompt else 1)
                if n_scored <= 0 or len(ids) < 2:
                    continue
                input_ids = torch.tensor([ids], device=device)
                labels = input_ids.clone()
                labels[:, : len(ids) - n_scored] = -100
                out = model(input_ids=input_ids, labels=labels)
                total_nll += float(out.loss) * n_scored
                total_tokens += n_scored
    finally:
        model.train(was_training)
    return math.exp(total_nll / total_tokens) if total_tokens else None
