"""A key/value cache whose layers grow in place, for the decode loop.

transformers' ``DynamicLayer`` appends each decode step's position with ``torch.cat``: every layer's
whole cache is copied at every step. In the continuous engine's decode loop that copy was 14 % of the
time (cProfile, 8 rejected answers: ``torch.cat`` in the cache update 5.0 of 36.4 s). ``GrowingLayer``
keeps keys and values at the start of a buffer with room for more positions, writes each step in
place and hands out a view of the filled part. A tensor assigned to ``keys`` or ``values`` (the engine
merges and drops rows that way) is kept as it is, without room: the next append moves it to a fresh
buffer, so memory the layer did not allocate is never written to.
"""

from __future__ import annotations

import functools
from typing import Any

MIN_ROOM = 128  # positions of headroom a new buffer gets, at least (or half the filled length)


class _Filled:
    """A layer attribute (``keys``/``values``): the filled start of a buffer along the sequence axis."""

    def __set_name__(self, owner: type, name: str) -> None:
        self.slot = f"_{name}_buffer"

    def __get__(self, layer: Any, owner: type | None = None) -> Any:
        if layer is None:
            return self
        buffer, filled = layer.__dict__.get(self.slot, (None, 0))
        return buffer if buffer is None or buffer.dim() < 2 else buffer[..., :filled, :]

    def __set__(self, layer: Any, value: Any) -> None:
        filled = value.shape[-2] if value is not None and value.dim() >= 2 else 0
        layer.__dict__[self.slot] = (value, filled)

    def append(self, layer: Any, new: Any) -> None:
        import torch

        buffer, filled = layer.__dict__.get(self.slot, (None, 0))
        end = filled + new.shape[-2]
        if buffer is None or buffer.dim() < 2 or buffer.shape[:-2] != new.shape[:-2] or end > buffer.shape[-2]:
            room = max(MIN_ROOM, end // 2)
            grown = torch.empty((*new.shape[:-2], end + room, new.shape[-1]), dtype=new.dtype, device=new.device)
            if filled:
                grown[..., :filled, :] = buffer[..., :filled, :]
            buffer = grown
        buffer[..., filled:end, :] = new
        layer.__dict__[self.slot] = (buffer, end)

    def adopt(self, layer: Any, buffer: Any, filled: int) -> None:
        """Take ``buffer`` (made by the caller, for this layer alone) whose first ``filled`` positions are the
        states: the room after them is written by the next appends."""
        layer.__dict__[self.slot] = (buffer, filled)


def restack(layer: Any, parts: list[tuple[Any, Any]], width: int, room: int | None = None) -> None:
    """Set ``layer``'s keys and values to ``parts`` ((keys, values), each [rows, heads, n <= width, dim]) one
    below the other, right aligned to ``width`` with zeros on the left (left padding), copied once into a
    buffer with room for the next appends: ``room`` positions (the most any row can still add), at most
    ``MIN_ROOM`` or half the width. The engine merges new rows and drops ended ones this way: a
    concatenation, then the next append's move to a buffer with room, copied the whole cache twice."""
    import torch

    most = max(MIN_ROOM, width // 2)
    extra = most if room is None else min(most, room)
    stacked = []
    for i in (0, 1):
        tensors = [part[i] for part in parts]
        first = tensors[0]
        rows = sum(t.shape[0] for t in tensors)
        buffer = torch.empty(
            (rows, first.shape[1], width + extra, first.shape[-1]),
            dtype=first.dtype,
            device=first.device,
        )
        row = 0
        for t in tensors:
            n = t.shape[-2]
            buffer[row : row + t.shape[0], :, : width - n].zero_()
            buffer[row : row + t.shape[0], :, width - n : width] = t
            row += t.shape[0]
        stacked.append(buffer)
    if not layer.is_initialized:  # a fresh layer: transformers sets its device (and empty states) first
        layer.lazy_initialization(stacked[0], stacked[1])
    if isinstance(type(layer).__dict__.get("keys"), _Filled):
        type(layer).keys.adopt(layer, stacked[0], width)
        type(layer).values.adopt(layer, stacked[1], width)
    else:  # another layer kind keeps plain tensors
        layer.keys, layer.values = stacked[0][..., :width, :], stacked[1][..., :width, :]


def cache_argument(model: Any, cache: Any) -> dict[str, Any]:
    """``cache`` as the keyword ``model``'s forward takes it by: ``cache`` in newer transformers (5.25 here,
    where ``past_key_values`` is deprecated), ``past_key_values`` in older 5.x (5.17 on the lent GPUs). An
    unknown keyword is swallowed by the forward's ``**kwargs``: the model would build a cache of its own and
    silently ignore this one (the prompt's cached start lost, nothing left for the next step)."""
    base = getattr(model, "get_base_model", None)  # a PEFT wrapper forwards to the model it wraps
    return {_cache_keyword(type(base() if callable(base) else model)): cache}


@functools.cache
def _cache_keyword(model_class: type) -> str:
    import inspect

    return "cache" if "cache" in inspect.signature(model_class.forward).parameters else "past_key_values"


def _layer_class() -> type:
    from transformers.cache_utils import DynamicLayer

    class GrowingLayer(DynamicLayer):
        """``DynamicLayer`` with in-place appends (see the module docstring)."""

        keys = _Filled()
        values = _Filled()

        def update(self, key_states: Any, value_states: Any, *args: Any, **kwargs: Any) -> tuple[Any, Any]:
            if not self.is_initialized:
                self.lazy_initialization(key_states, value_states)
            type(self).keys.append(self, key_states)
            type(self).values.append(self, value_states)
            return self.keys, self.values

    return GrowingLayer


@functools.cache
def growing_layer_class() -> type:
    """The ``GrowingLayer`` class, made once (transformers is imported on first use only)."""
    return _layer_class()


def growing_cache(config: Any) -> Any:
    """A ``DynamicCache`` for ``config`` whose full-attention layers grow in place (sliding-window and
    other layer kinds keep transformers' own)."""
    from transformers import DynamicCache
    from transformers.cache_utils import DynamicLayer

    cache = DynamicCache(config=config)
    grow = growing_layer_class()
    cache.layers = [grow() if type(layer) is DynamicLayer else layer for layer in cache.layers]
    if getattr(cache, "layer_class_to_replicate", None) is DynamicLayer:  # layers made on first use
        cache.layer_class_to_replicate = grow
    return cache
