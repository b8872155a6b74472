"""Wall seconds per optimizer step, for the run's metrics: the first step pays for what is done once
(kernel selection, the allocator's growth, lazy initialisation), the median is the steady rate."""

from __future__ import annotations

import statistics
import time
from typing import Any


def step_clock() -> Any:
    """A TrainerCallback; ``.summary()`` gives ``first_step_s`` and ``median_step_s`` (empty before a step)."""
    from transformers import TrainerCallback

    class StepClock(TrainerCallback):
        def __init__(self) -> None:
            self.seconds: list[float] = []
            self._began = 0.0

        def on_step_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> Any:
            self._began = time.perf_counter()
            return control

        def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> Any:
            self.seconds.append(time.perf_counter() - self._began)
            return control

        def summary(self) -> dict[str, float]:
            if not self.seconds:
                return {}
            first, median = self.seconds[0], statistics.median(self.seconds)
            return {"first_step_s": round(first, 3), "median_step_s": round(median, 3)}

    return StepClock()
