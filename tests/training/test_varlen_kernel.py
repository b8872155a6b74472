"""On a GPU, packed rows go through torch's fused variable-length kernel in one call, built for the installed
torch's keywords. The kernel exists for CUDA only, so here it is played by a reference of its documented
contract ((tokens, heads, dim) tensors, cumulative bounds): what is tested is our side of the call."""

from __future__ import annotations

import logging

import pytest

from twin_core.training import varlen_attention
from twin_core.training.varlen_attention import varlen_sdpa

BOUNDS = [0, 5, 6, 13, 13, 20]  # four examples, one of them empty (as a collator's bounds can have)
HEADS, KV_HEADS, DIM = 4, 2, 8


def _tensors():  # noqa: ANN202
    import torch

    g = torch.Generator().manual_seed(0)
    q = torch.randn(1, HEADS, BOUNDS[-1], DIM, generator=g)
    k, v = (torch.randn(1, KV_HEADS, BOUNDS[-1], DIM, generator=g) for _ in range(2))
    return q, k, v, torch.tensor(BOUNDS, dtype=torch.int64)


def _per_example(q, k, v, cu, causal: bool):  # noqa: ANN001, ANN202
    """The kernel's contract, from SDPA: (tokens, heads, dim) in and out, each example on its own."""
    import torch
    import torch.nn.functional as F

    bounds = cu.tolist()
    parts = [F.scaled_dot_product_attention(q[a:b].transpose(0, 1), k[a:b].transpose(0, 1), v[a:b].transpose(0, 1),
                                            is_causal=causal, enable_gqa=q.shape[1] != k.shape[1])
             for a, b in zip(bounds, bounds[1:], strict=False) if b > a]  # fmt: skip
    return torch.cat(parts, dim=1).transpose(0, 1)


def _attend(monkeypatch: pytest.MonkeyPatch, kernel) -> object:  # noqa: ANN001
    monkeypatch.setattr(varlen_attention, "_cuda_kernel", lambda query: kernel)
    q, k, v, cu = _tensors()
    out, weights = varlen_sdpa(None, q, k, v, None, scaling=DIM**-0.5, cu_seq_lens_q=cu)
    assert weights is None and out.shape == (1, BOUNDS[-1], HEADS, DIM)
    return out


@pytest.fixture(autouse=True)
def _fresh(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(varlen_attention, "_given_up", [])
    monkeypatch.setattr(varlen_attention, "_last", [None, []])


def test_one_call_with_todays_keywords_gives_the_per_example_values(monkeypatch: pytest.MonkeyPatch) -> None:
    import torch

    calls = []

    def kernel(query, key, value, cu_seq_q, cu_seq_k, max_q, max_k, *, return_aux=None, scale=None,
               window_size=(-1, -1), enable_gqa=False):  # fmt: skip  # torch 2.11-2.13
        calls.append((cu_seq_q.dtype, max_q, max_k, window_size, scale, enable_gqa, key.shape[1]))
        return _per_example(query, key, value, cu_seq_q, causal=window_size == (-1, 0))

    reference = _attend(monkeypatch, None)  # no kernel: one SDPA per example
    assert torch.allclose(_attend(monkeypatch, kernel), reference, atol=1e-6)
    assert calls == [(torch.int32, 7, 7, (-1, 0), DIM**-0.5, True, KV_HEADS)]


def test_an_older_torch_gets_is_causal_and_repeated_key_value_heads(monkeypatch: pytest.MonkeyPatch) -> None:
    import torch

    calls = []

    def kernel(query, key, value, cu_seq_q, cu_seq_k, max_q, max_k, is_causal=False, return_aux=None):  # torch 2.9
        calls.append((is_causal, key.shape[1], value.shape[1]))
        return _per_example(query, key, value, cu_seq_q, causal=is_causal)

    reference = _attend(monkeypatch, None)
    assert torch.allclose(_attend(monkeypatch, kernel), reference, atol=1e-6)
    assert calls == [(True, HEADS, HEADS)]


def test_a_refused_batch_is_logged_once_and_attended_per_example(monkeypatch, caplog) -> None:  # noqa: ANN001
    import torch

    calls = []

    def kernel(query, key, value, cu_seq_q, cu_seq_k, max_q, max_k, *, window_size=(-1, -1), enable_gqa=False):
        calls.append(1)
        raise RuntimeError("FlashAttention only supports Ampere GPUs or newer")

    reference = _attend(monkeypatch, None)
    with caplog.at_level(logging.WARNING, logger=varlen_attention.__name__):
        first = _attend(monkeypatch, kernel)
        second = _attend(monkeypatch, kernel)
    assert torch.equal(first, reference) and torch.equal(second, reference)
    assert calls == [1]  # given up after the first refusal
    assert [r.getMessage() for r in caplog.records] == [
        "varlen attention: torch's fused kernel refused a packed batch (RuntimeError: FlashAttention only supports "
        "Ampere GPUs or newer); one SDPA per example from now on (the same values, slower)"
    ]


def test_a_model_scale_the_kernel_cannot_take_is_refused_not_dropped(monkeypatch: pytest.MonkeyPatch) -> None:
    import torch

    def kernel(query, key, value, cu_seq_q, cu_seq_k, max_q, max_k, is_causal=False):  # no scale keyword
        return _per_example(query, key, value, cu_seq_q, causal=is_causal)

    q, k, v, cu = _tensors()
    with pytest.raises(NotImplementedError, match="takes no scale"):
        varlen_attention.fused(kernel, q, k, v, cu, BOUNDS, 0.1)
    out = varlen_attention.fused(kernel, q, k, v, cu, BOUNDS, DIM**-0.5)  # the default scale: fine
    assert torch.allclose(out, _attend(monkeypatch, None), atol=1e-6)


def test_only_a_cuda_tensor_in_half_precision_takes_the_kernel() -> None:
    import torch

    q = torch.zeros(1, HEADS, 4, DIM)
    assert varlen_attention.fused_kernel(q) is None
    assert varlen_attention.fused_kernel(q.to(torch.bfloat16)) is None  # on the CPU: one SDPA per example


def test_the_call_fits_the_installed_torchs_kernel_on_meta_tensors() -> None:
    # meta tensors run the real op's shape function (forward and backward), no GPU needed: the keywords,
    # the layout and the grouped key/value heads are what this torch's varlen_attn accepts
    import torch
    from torch.nn.attention.varlen import varlen_attn

    def meta(heads: int):  # noqa: ANN202
        return torch.empty(1, heads, BOUNDS[-1], DIM, device="meta", dtype=torch.bfloat16, requires_grad=True)

    q, k, v = meta(HEADS), meta(KV_HEADS), meta(KV_HEADS)
    cu = torch.tensor(BOUNDS, device="meta")
    out = varlen_attention.fused(varlen_attn, q, k, v, cu, BOUNDS, DIM**-0.5)
    assert (out.shape, out.dtype) == ((1, BOUNDS[-1], HEADS, DIM), torch.bfloat16)
    out.sum().backward()
    assert (q.grad.shape, k.grad.shape, v.grad.shape) == (q.shape, k.shape, v.shape)
