"""Variable-length attention for packed, padding-free SFT batches, on any device.

A padding-free batch is one row of several examples; TRL's collator gives their bounds
(``cu_seq_lens_q``). Plain SDPA attends over the whole row through a block-diagonal mask: every
query is scored against every key of the row and most scores are then masked, so a row of four
examples costs about four times the attention it needs (on this CPU the packed step was slower than
a padded one). Here each example runs its own causal SDPA (the fused causal kernel, no mask built
for it): the same values as the block-diagonal mask, for the cost of the examples alone.
``torch.nn.attention.varlen`` would do this in one kernel but exists for CUDA only.

Every other batch (padded rows, DPO, evaluation without packing) goes to transformers' own SDPA with
its mask, unchanged.

On a CUDA GPU in bf16/fp16, the examples go through torch's fused variable-length flash kernel
(``torch.nn.attention.varlen.varlen_attn``) in one call instead of one SDPA per example and layer: on a
packed 2,048-token row of short examples that is one launch instead of dozens. Its keywords changed
between torch releases (``is_causal`` / ``window_size``, ``scale``, ``enable_gqa``); the call is built
from the installed signature. If the kernel refuses a batch, the reason is logged once and the
per-example path takes over: the same values, slower.
"""

from __future__ import annotations

import functools
import inspect
import logging
from typing import Any

log = logging.getLogger(__name__)

NAME = "twin_varlen_sdpa"
_given_up: list[str] = []  # why the fused kernel was given up (once per process)


def varlen_sdpa(
    module: Any, query: Any, key: Any, value: Any, attention_mask: Any, dropout: float = 0.0,
    scaling: float | None = None, cu_seq_lens_q: Any = None, **kwargs: Any,
) -> tuple[Any, None]:  # fmt: skip
    """transformers attention interface: ``query`` (1, heads, tokens, dim), ``key``/``value`` with the
    key-value heads; returns (1, tokens, heads, dim) as SDPA's interface does."""
    from transformers.integrations.sdpa_attention import sdpa_attention_forward

    if cu_seq_lens_q is None or query.shape[0] != 1 or dropout:
        return sdpa_attention_forward(
            module, query, key, value, attention_mask, dropout=dropout, scaling=scaling, **kwargs
        )
    import torch
    import torch.nn.functional as F

    bounds = _bounds(cu_seq_lens_q)
    kernel = fused_kernel(query)
    if kernel is not None:
        try:
            return fused(kernel, query, key, value, cu_seq_lens_q, bounds, scaling), None
        except (RuntimeError, NotImplementedError, TypeError, ValueError) as exc:
            _given_up.append(f"{type(exc).__name__}: {exc}")
            log.warning("varlen attention: torch's fused kernel refused a packed batch (%s); one SDPA per example "
                        "from now on (the same values, slower)", _given_up[0])  # fmt: skip
    gqa = query.shape[1] != key.shape[1]
    parts = [
        F.scaled_dot_product_attention(
            query[:, :, a:b], key[:, :, a:b], value[:, :, a:b], is_causal=True, scale=scaling, enable_gqa=gqa
        )
        for a, b in zip(bounds, bounds[1:], strict=False)
        if b > a
    ]
    out = parts[0] if len(parts) == 1 else torch.cat(parts, dim=2)
    return out.transpose(1, 2).contiguous(), None


def fused_kernel(query: Any) -> Any | None:
    """torch's fused variable-length kernel when ``query`` can take it and it was not given up on, else None."""
    return None if _given_up else _cuda_kernel(query)


def _cuda_kernel(query: Any) -> Any | None:
    """The kernel for a CUDA tensor in bf16 or fp16 with torch >= 2.9."""
    import torch

    if not query.is_cuda or query.dtype not in (torch.bfloat16, torch.float16):
        return None
    try:
        from torch.nn.attention.varlen import varlen_attn
    except ImportError:
        return None
    return varlen_attn


def fused(kernel: Any, query: Any, key: Any, value: Any, cu_seq_lens: Any, bounds: list[int],
          scaling: float | None) -> Any:  # fmt: skip
    """All the examples in one kernel call: (1, heads, tokens, dim) in, (1, tokens, heads, dim) out."""
    import torch

    params = _keywords(kernel)
    q, k, v = (t[0].transpose(0, 1) for t in (query, key, value))  # (tokens, heads, dim)
    kwargs: dict[str, Any] = {"window_size": (-1, 0)} if "window_size" in params else {"is_causal": True}
    if scaling is not None and "scale" in params:
        kwargs["scale"] = scaling
    elif scaling is not None and abs(scaling - q.shape[-1] ** -0.5) > 1e-9:
        raise NotImplementedError(f"this torch's varlen_attn takes no scale (the model's is {scaling})")
    if q.shape[1] != k.shape[1]:  # grouped-query attention: each key/value head serves a group of heads
        if "enable_gqa" in params:
            kwargs["enable_gqa"] = True
        else:
            k, v = (t.repeat_interleave(q.shape[1] // t.shape[1], dim=1) for t in (k, v))
    cu = cu_seq_lens.to(device=q.device, dtype=torch.int32)
    longest = max(b - a for a, b in zip(bounds, bounds[1:], strict=False))
    return kernel(q, k, v, cu, cu, longest, longest, **kwargs).unsqueeze(0)


@functools.cache
def _keywords(kernel: Any) -> frozenset[str]:
    return frozenset(inspect.signature(kernel).parameters)


_last: list[Any] = [None, []]  # (the bounds tensor, its list): every layer of a forward gets the same tensor


def _bounds(cu_seq_lens: Any) -> list[int]:
    """The bounds as ints, read once per forward: on a GPU each read waits for the device."""
    if _last[0] is not cu_seq_lens:
        _last[:] = [cu_seq_lens, [int(b) for b in cu_seq_lens.tolist()]]
    return _last[1]


def register(fused: bool = True) -> str:
    """Make ``attn_implementation=NAME`` known to transformers (idempotent); its mask is SDPA's, used by
    the batches that fall back to SDPA. ``fused=False`` (``TWIN_TRAINING_FUSED_VARLEN=false``): never the
    fused kernel, for a GPU where it fails where no fallback can catch it (its backward pass)."""
    from transformers import AttentionInterface
    from transformers.masking_utils import ALL_MASK_ATTENTION_FUNCTIONS, sdpa_mask

    _given_up[:] = [] if fused else ["TWIN_TRAINING_FUSED_VARLEN=false"]

    AttentionInterface.register(NAME, varlen_sdpa)
    ALL_MASK_ATTENTION_FUNCTIONS.register(NAME, sdpa_mask)
    return NAME
