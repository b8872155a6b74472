"""CPU speed-ups for the local model, applied when it is loaded on the CPU.

A batched decode step multiplies a few rows (one per running request) by every weight matrix. MKL's
plain ``sgemm`` does that badly for 2-16 rows on this 2-core machine: a 16-row step's products take
66 ms, and 8 rows take as long as 16 (the 49,152 x 576 vocabulary head: 19.7 ms for 8 rows, 13.0 for 16).
On weights packed once for MKL (``cblas_sgemm_pack``: torch's ``mkl::_mkl_linear``, which Inductor uses for
frozen CPU models) the same step takes 48-49 ms for 8 or 16 rows. The packed product has its row count
fixed at packing time, so 2 to ``DECODE_ROWS`` rows are zero-padded to it. One row (a single request) and
larger inputs (prefill, perplexity) keep the plain product, which is faster for one row. A padded row
never changes another row's result, and the packed product gives exactly the plain 16-row product's
numbers. The cost is one more copy of the weights in memory, so only models up to ``max_bytes`` are packed.
"""

from __future__ import annotations

import ctypes
import logging
import sys
import types
from typing import Any

log = logging.getLogger(__name__)

DECODE_ROWS = 16  # the rows evaluation and dataset builds decode together; more take the plain product


def pack_decode_weights(model: Any, *, rows: int = DECODE_ROWS, max_bytes: int = 2 << 30) -> int:
    """Give each fp32 CPU ``nn.Linear`` of ``model`` its weight packed for ``rows``-row products; returns
    how many were packed (0 without MKL's packed product, or when they hold more than ``max_bytes``)."""
    import torch

    if not torch.backends.mkl.is_available() or not hasattr(torch.ops.mkl, "_mkl_linear"):
        return 0
    linears = [
        m
        for m in model.modules()
        if isinstance(m, torch.nn.Linear) and m.weight.dtype == torch.float32 and m.weight.device.type == "cpu"
    ]
    if sum(m.weight.numel() * 4 for m in linears) > max_bytes:
        return 0
    try:  # a private op of torch's: if it fails here, the model keeps its plain products
        packed = [torch.ops.mkl._mkl_reorder_linear_weight(m.weight.detach(), rows) for m in linears]
    except RuntimeError as exc:
        log.warning("decode weights not packed for MKL: %s", exc)
        return 0
    for module, weight in zip(linears, packed, strict=True):
        module._twin_packed, module._twin_rows = weight, rows
        module.forward = types.MethodType(_packed_forward, module)
    return len(linears)


def _packed_forward(self: Any, x: Any) -> Any:
    import torch

    m = x.numel() // x.shape[-1]
    if not 2 <= m <= self._twin_rows or torch.is_grad_enabled():
        return torch.nn.functional.linear(x, self.weight, self.bias)
    flat = torch.nn.functional.pad(x.reshape(m, x.shape[-1]), (0, 0, 0, self._twin_rows - m))
    out = torch.ops.mkl._mkl_linear(flat, self._twin_packed, self.weight, self.bias, self._twin_rows)
    return out[:m].reshape(*x.shape[:-1], out.shape[-1])


def keep_freed_memory() -> bool:
    """Ask glibc to keep freed memory for reuse instead of returning it to the system after each forward
    (activations of a few MB each were mapped and unmapped every time: 2.4 M page faults for 32 answers);
    False where the C library is not glibc."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:
        return False
    m_trim_threshold, m_mmap_threshold = -1, -3
    return bool(libc.mallopt(m_mmap_threshold, 32 << 20)) and bool(libc.mallopt(m_trim_threshold, 1 << 30))
