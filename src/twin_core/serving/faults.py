"""Fault injection for canary drills (like Istio's HTTP fault injection): ``TWIN_SERVE_FAULTS`` maps a
served version to the share of its generations that fail, e.g. ``{"ada-quillfeather/v0002": 0.3}``.

The failures are deterministic, not random: of every run of requests, request ``i`` (counted from 0)
fails when ``floor((i + 1) * rate) > floor(i * rate)``, so exactly 3 of every 10 fail at 0.3. A drill
(or a test) then knows how many errors the canary produced and that the watch must roll it back.
"""

from __future__ import annotations

import math
from typing import Any

from twin_core.serving.batching import Batcher, ContinuousBatcher


class InjectedFault(RuntimeError):
    """A generation failed on purpose (TWIN_SERVE_FAULTS)."""


def fails(index: int, rate: float) -> bool:
    """Whether request ``index`` (0-based) of a version with failure ``rate`` fails."""
    return math.floor((index + 1) * rate + 1e-9) > math.floor(index * rate + 1e-9)


class _Faults:
    """Mixed in before a batcher: its ``generate`` (and so ``stream``) fails ``rate`` of the requests."""

    rate: float
    calls: int
    version: str

    async def generate(self, messages: Any, **kwargs: Any) -> Any:
        index, self.calls = self.calls, self.calls + 1
        if fails(index, self.rate):
            raise InjectedFault(f"injected fault for {self.version} (TWIN_SERVE_FAULTS, rate {self.rate:g})")
        return await super().generate(messages, **kwargs)  # type: ignore[misc]


class FaultyBatcher(_Faults, Batcher):
    def __init__(self, llm: Any, rate: float, **kwargs: Any) -> None:
        super().__init__(llm, **kwargs)
        self.rate, self.calls = rate, 0


class FaultyContinuousBatcher(_Faults, ContinuousBatcher):
    def __init__(self, llm: Any, rate: float, **kwargs: Any) -> None:
        super().__init__(llm, **kwargs)
        self.rate, self.calls = rate, 0
