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
"""

from __future__ import annotations

from typing import Any

NAME = "twin_varlen_sdpa"


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


_last: list[Any] = [None, []]  # (the bounds tensor, its list): every layer of a forward gets the same tensor


def _bounds(cu_seq_lens: Any) -> list[int]:
    """The bounds as ints, read once per forward: on a GPU each read waits for the device."""
    if _last[0] is not cu_seq_lens:
        _last[:] = [cu_seq_lens, [int(b) for b in cu_seq_lens.tolist()]]
    return _last[1]


def register() -> str:
    """Make ``attn_implementation=NAME`` known to transformers (idempotent); its mask is SDPA's, used by
    the batches that fall back to SDPA."""
    from transformers import AttentionInterface
    from transformers.masking_utils import ALL_MASK_ATTENTION_FUNCTIONS, sdpa_mask

    AttentionInterface.register(NAME, varlen_sdpa)
    ALL_MASK_ATTENTION_FUNCTIONS.register(NAME, sdpa_mask)
    return NAME
