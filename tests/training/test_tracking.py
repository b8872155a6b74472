"""Comet tracking: system metrics sampled on a GPU, not on a CPU (their thread slows CPU training)."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.mark.parametrize("sample_system", [True, False])
def test_system_metrics_thread_only_when_sampling(tmp_path: Path, monkeypatch, sample_system: bool) -> None:
    from comet_ml.system.system_metrics_logging_thread import SystemMetricsLoggingThread

    from twin_core.settings import load_settings
    from twin_core.training.tracking import Tracker

    monkeypatch.delenv("COMET_API_KEY", raising=False)
    tracker = Tracker(load_settings(home=tmp_path), tmp_path / "comet", "run", {"lr": 1e-4}, ["sft"],
                      sample_system=sample_system)  # fmt: skip
    try:
        # this experiment's own sampler (another test's, still winding down after its end(), is not counted)
        sampler = tracker.experiment.system_metrics_thread
        if sample_system:
            assert isinstance(sampler, SystemMetricsLoggingThread) and sampler.is_alive()
        else:
            assert sampler is None
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
