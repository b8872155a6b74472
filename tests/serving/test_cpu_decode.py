"""The local model's CPU speed-ups (llm/cpu_decode.py): packed weights give every row of a 2-16-row
product the plain 16-row product's numbers whatever rows decode with it; one row, larger inputs and
training keep the plain product."""

from __future__ import annotations

from typing import Any

import pytest


def _model() -> Any:
    import torch

    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Linear(64, 96), torch.nn.Linear(96, 48, bias=False))


def test_packed_rows_give_the_plain_sixteen_row_product_whatever_rides_along() -> None:
    import torch

    from twin_core.llm.cpu_decode import DECODE_ROWS, pack_decode_weights

    model = _model()
    x, big = torch.randn(DECODE_ROWS, 1, 64), torch.randn(40, 64)
    with torch.no_grad():
        plain_16, plain_1, plain_big = model(x), model(x[:1]), model(big)
        assert pack_decode_weights(model) == 2 and hasattr(model[1], "_twin_packed")
        assert torch.equal(model(x), plain_16)
        for rows in (2, 3, 9):  # a row's numbers do not depend on how many rows decode with it
            assert torch.equal(model(x[:rows]), plain_16[:rows])
        assert torch.equal(model(x[:1]), plain_1)  # one row: the plain product
        assert torch.equal(model(big), plain_big)  # more rows than packed for: the plain product
    y = model(x[:4])  # gradients wanted (training): the plain product, which autograd can follow
    y.sum().backward()
    assert model[0].weight.grad is not None and model[0].weight.grad.abs().sum() > 0


def test_models_above_the_memory_cap_or_where_packing_fails_are_left_as_they_are(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import torch

    from twin_core.llm.cpu_decode import pack_decode_weights

    model = _model()
    assert pack_decode_weights(model, max_bytes=1000) == 0
    assert not hasattr(model[0], "_twin_packed") and "forward" not in vars(model[0])

    def failing(weight: Any, rows: int) -> Any:
        raise RuntimeError("MKL cannot pack here")

    monkeypatch.setattr(torch.ops.mkl, "_mkl_reorder_linear_weight", failing)
    assert pack_decode_weights(model) == 0
    assert not any(hasattr(m, "_twin_packed") or "forward" in vars(m) for m in model)


@pytest.mark.skipif(not __import__("sys").platform.startswith("linux"), reason="glibc's mallopt")
def test_glibc_keeps_freed_memory() -> None:
    from twin_core.llm.cpu_decode import keep_freed_memory

    assert keep_freed_memory() is True
