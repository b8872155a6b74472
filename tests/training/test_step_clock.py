"""The step clock behind ``first_step_s`` / ``median_step_s`` in a run's metrics."""

from __future__ import annotations

import pytest

from twin_core.training import step_clock as module


def test_first_and_median_step_from_the_steps_own_bounds(monkeypatch: pytest.MonkeyPatch) -> None:
    ticks = iter([10.0, 22.5, 23.0, 25.0, 30.0, 33.0])  # steps of 12.5, 2.0 and 3.0 s
    monkeypatch.setattr(module.time, "perf_counter", lambda: next(ticks))
    clock = module.step_clock()
    assert clock.summary() == {}  # no step yet (a finished run resumed)
    for _ in range(3):
        clock.on_step_begin(None, None, "control")
        assert clock.on_step_end(None, None, "control") == "control"
    assert clock.summary() == {"first_step_s": 12.5, "median_step_s": 3.0}
