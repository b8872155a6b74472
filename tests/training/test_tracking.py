"""Comet tracking: system metrics sampled on a GPU, not on a CPU (their thread slows CPU training)."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest


@pytest.mark.parametrize("sample_system", [True, False])
def test_system_metrics_thread_only_when_sampling(tmp_path: Path, monkeypatch, sample_system: bool) -> None:
    from twin_core.settings import load_settings
    from twin_core.training.tracking import Tracker

    monkeypatch.delenv("COMET_API_KEY", raising=False)
    tracker = Tracker(load_settings(home=tmp_path), tmp_path / "comet", "run", {"lr": 1e-4}, ["sft"],
                      sample_system=sample_system)  # fmt: skip
    try:
        samplers = [t for t in threading.enumerate() if type(t).__name__ == "SystemMetricsLoggingThread"]
        assert len(samplers) == (1 if sample_system else 0)
        assert tracker.experiment.log_env_cpu is sample_system and tracker.experiment.log_env_gpu is sample_system
    finally:
        archive = tracker.end(tmp_path / "model" / "comet")
    assert archive is not None and archive.is_file()  # the offline archive is kept either way


def test_cpu_profiles_do_not_sample(monkeypatch) -> None:
    from twin_core.training import run

    seen: dict[str, bool] = {}

    class Recorder:
        def __init__(self, *args, sample_system: bool, **kwargs) -> None:
            seen["sample_system"] = sample_system

    monkeypatch.setattr("twin_core.training.tracking.Tracker", Recorder)
    for device, expected in (("cpu", False), ("gpu", True)):
        plan = type("Plan", (), {"params": {}, "profile": type("P", (), {"device": device})()})()
        run._tracker(None, plan, Path("unused"), "name", [])
        assert seen["sample_system"] is expected
