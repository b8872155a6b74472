"""Automatic prompt-prefix caching for the decode loop: the key/value states of a token prefix that
recent prompts shared, so the next prompt that starts with it prefills only the rest.

Every twin prompt starts with the same tokens: the chat template, the author's persona and rules (the
system message, a constant of the author) and the opening of the user message. On a CPU the prefill
is compute-bound (8 prompts cost 7.6x one, docs/benchmarks.md), so not recomputing that shared part
is the lever batching cannot pull. Prefixes are learnt, not configured: the longest common prefix of a
prompt and the one prefilled before it (at least ``min_tokens``) is kept, sliced from the states of that
previous prompt, which its own forward pass computed anyway. Keys carry their rotary position, and a
prefix always sits at positions 0..n-1, so its states are valid for any later prompt that starts with
the same ids.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence
from typing import Any

from twin_core.llm.kv_cache import cache_argument

Layers = list[tuple[Any, Any]]  # per layer: keys, values of shape [1, heads, n, head_dim]


class PrefixCache:
    """At most ``capacity`` prefixes (least recently used dropped), each at least ``min_tokens`` long."""

    def __init__(self, *, min_tokens: int = 32, capacity: int = 4) -> None:
        self.min_tokens = min_tokens
        self.capacity = capacity
        self._entries: OrderedDict[tuple[int, ...], Layers] = OrderedDict()
        self._last: tuple[list[int], Layers] | None = None  # the prompt prefilled last and its states
        self.hits = 0  # prompts that reused a prefix (tests and benchmarks read them)
        self.reused_tokens = 0

    def match(self, prompt: list[int], *, count: bool = True) -> tuple[tuple[int, ...], Layers] | None:
        """The longest stored prefix of ``prompt`` that leaves at least one token to prefill (``count``:
        a use, counted in ``hits`` and ``reused_tokens``, after keeping the start ``prompt`` shares with
        the prompt prefilled last when it is longer)."""
        best = max((ids for ids in self._entries if _starts_with(prompt, ids)), key=len, default=None)
        if count:
            best = self._learn(prompt, best)
        if best is None:
            return None
        if count:
            self._entries.move_to_end(best)
            self.hits += 1
            self.reused_tokens += len(best)
        return best, self._entries[best]

    def remember(self, prompt: list[int], layers: Layers) -> None:
        """The states of every position of ``prompt``, just prefilled (kept as given, never written to):
        the next prompt's start shared with it is sliced from them."""
        self._last = (list(prompt), layers)

    def _learn(self, prompt: list[int], best: tuple[int, ...] | None) -> tuple[int, ...] | None:
        """Store the start ``prompt`` shares with the prompt prefilled last when it beats ``best``; the
        longest prefix now."""
        if self._last is None:
            return best
        last, layers = self._last
        n = shared_length([prompt, last], len(prompt) - 1)  # keep one token to prefill
        if n < self.min_tokens or n <= len(best or ()):
            return best
        self.store(prompt[:n], [(keys[:, :, :n].clone(), values[:, :, :n].clone()) for keys, values in layers])
        return tuple(prompt[:n])

    def common(self, prompts: list[list[int]]) -> int:
        """Length of the start all ``prompts`` share, each keeping a token to prefill (0 below ``min_tokens``)."""
        n = shared_length(prompts, min(len(p) for p in prompts) - 1)
        return n if n >= self.min_tokens else 0

    def store(self, ids: list[int], layers: Layers) -> None:
        self._entries[tuple(ids)] = layers
        self._entries.move_to_end(tuple(ids))
        while len(self._entries) > self.capacity:
            self._entries.popitem(last=False)

    def __len__(self) -> int:
        return len(self._entries)


def shared_length(seqs: Sequence[Sequence[int]], limit: int) -> int:
    """How many leading ids all ``seqs`` have in common, at most ``limit``."""
    n = min([limit, *(len(s) for s in seqs)])
    first = seqs[0]
    for s in seqs[1:]:
        n = next((k for k in range(n) if s[k] != first[k]), n)
    return n


def run_prefix(model: Any, ids: list[int]) -> Layers:
    """The key/value states of ``ids`` alone (one row at positions 0..n-1), computed once."""
    import torch
    from transformers import DynamicCache

    cache = DynamicCache(config=model.config)
    model(
        input_ids=torch.tensor([ids], dtype=torch.long, device=next(model.parameters()).device),
        **cache_argument(model, cache),
        use_cache=True,
        logits_to_keep=1,
    )
    return [(layer.keys, layer.values) for layer in cache.layers]


def cache_from(model: Any, layers: Layers | None, rows: int, *, grow: bool = False) -> Any:
    """A fresh ``DynamicCache`` that starts with ``layers`` for each of ``rows`` rows (empty without);
    ``grow``: its layers append in place (``kv_cache``), for a decode loop. Either way ``update`` copies
    the stored states into the cache's own tensors, so they are never written to."""
    from transformers import DynamicCache

    from twin_core.llm.kv_cache import growing_cache

    cache = growing_cache(model.config) if grow else DynamicCache(config=model.config)
    for i, (keys, values) in enumerate(layers or []):
        cache.update(keys.expand(rows, -1, -1, -1), values.expand(rows, -1, -1, -1), i)
    return cache


def _starts_with(prompt: list[int], ids: tuple[int, ...]) -> bool:
    return len(prompt) > len(ids) and tuple(prompt[: len(ids)]) == ids
