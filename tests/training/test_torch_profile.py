"""TWIN_TRAINING_TORCH_PROFILE: torch.profiler records of optimizer step 1 and of steps 3-4."""

from __future__ import annotations

import gzip
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from training_fixtures import TWIN_BIN_PATH, run_json

from twin_core.settings import TrainingSettings

REPO = Path(__file__).resolve().parents[2]


def test_step_one_and_steps_three_and_four_are_recorded_where_the_setting_says(train_env, instruct_version, tiny_random,
                                                                  tmp_path) -> None:  # fmt: skip
    out = tmp_path / "profile"
    env = {**os.environ, **train_env, "TWIN_TRAINING_TORCH_PROFILE": str(out)}
    cmd = [TWIN_BIN_PATH, "train", "sft", "--dataset", instruct_version, "--profile", str(tiny_random)]
    result = run_json(cmd, env)
    assert result["status"] == "ok" and result["steps"] == 4
    (out,) = out.iterdir()  # the run's own folder
    assert out.name.startswith("sft-") and result["run_id"] in out.name
    files = ["ops.txt", "summary.json", "trace.json.gz"]
    assert sorted(p.name for p in out.iterdir()) == ["first-step", *files]
    assert sorted(p.name for p in (out / "first-step").iterdir()) == files
    summary = json.loads((out / "summary.json").read_text())
    assert summary["steps"] == 2 and summary["wall_s"] > 0
    assert json.loads((out / "first-step" / "summary.json").read_text())["steps"] == 1
    assert summary["device_busy_s"] is None and summary["top_by"] == "self_cpu_time_total"  # a CPU run
    ops = {op["op"]: op for op in summary["top"]}
    assert "aten::mm" in ops or "aten::addmm" in ops  # the projections' matrix products
    cpu_ms = [op["self_cpu_ms"] for op in summary["top"]]
    assert cpu_ms == sorted(cpu_ms, reverse=True)
    assert "by own CPU time:" in (out / "ops.txt").read_text()
    with gzip.open(out / "trace.json.gz", "rt") as trace:
        assert json.load(trace)["traceEvents"]


@pytest.mark.parametrize(("steps", "folders", "steady_steps"), [(2, ["first-step"], None), (3, ["first-step", "ops.txt",
                         "summary.json", "trace.json.gz"], 1)])  # fmt: skip
def test_a_run_that_ends_early_records_what_it_reached_and_says_so(
    tmp_path, caplog: pytest.LogCaptureFixture, steps: int, folders: list[str], steady_steps: int | None
) -> None:
    """The callback as the Trainer drives it, in-process: a run of 2 steps ends in the warm-up step (step 1
    only), one of 3 inside the steady window (step 3 alone)."""
    import logging

    import torch

    from twin_core.training.torch_profile import profile_callback

    out = tmp_path / "profile"
    callback, control = profile_callback(out), object()
    callback.on_train_begin(None, None, control)
    for _ in range(steps):
        torch.ones(64, 64) @ torch.ones(64, 64)
        assert callback.on_step_end(None, None, control) is control
    with caplog.at_level(logging.WARNING, logger="twin_core.training.torch_profile"):
        callback.on_train_end(None, None, control)
    assert sorted(p.name for p in out.iterdir()) == folders
    assert json.loads((out / "first-step" / "summary.json").read_text())["steps"] == 1
    if steady_steps:
        assert json.loads((out / "summary.json").read_text())["steps"] == steady_steps
        assert callback.written == [out / "first-step", out] and not caplog.text
    else:
        assert callback.written == [out / "first-step"]
        assert "the run ended after 2 steps; steps 3-4, the steady ones, were not recorded" in caplog.text


def test_off_unless_set() -> None:
    assert TrainingSettings().torch_profile is None
    assert TrainingSettings(torch_profile=Path("p")).torch_profile == Path("p")


def test_on_a_gpu_the_summary_ranks_by_own_device_time_and_gives_the_busy_seconds(tmp_path) -> None:
    """The GPU branch of write_profile, on torch's own averaged-event type with device times filled in: an
    operator's own device time is its kernels' time again, so only the kernels count as busy time."""
    from torch.autograd import DeviceType
    from torch.autograd.profiler_util import EventList, FunctionEventAvg

    from twin_core.training.torch_profile import write_profile

    def avg(key: str, cpu_us: int, device_us: int, calls: int, device: DeviceType = DeviceType.CPU) -> FunctionEventAvg:
        event = FunctionEventAvg()
        event.key, event.count, event.use_device, event.device_type = key, calls, "cuda", device
        event.self_cpu_time_total, event.self_device_time_total = cpu_us, device_us
        event.is_user_annotation = key == "ProfilerStep*"
        return event

    ops = EventList([avg("aten::mm", 2_000, 600_000, 96), avg("ProfilerStep*", 900_000, 0, 2),
                     avg("aten::_flash_attention_backward", 1_000, 250_000, 32),
                     avg("sm90_xmma_gemm_bf16", 0, 600_000, 96, DeviceType.CUDA),
                     avg("flash_bwd_kernel", 0, 250_000, 32, DeviceType.CUDA)], use_device="cuda")  # fmt: skip
    traces: list[str] = []
    prof = type(
        "Prof", (), {"key_averages": lambda self: ops, "export_chrome_trace": lambda self, p: traces.append(p)}
    )()
    summary = write_profile(prof, tmp_path, 2, 1.7)
    assert summary["device_busy_s"] == 0.85 and summary["wall_s"] == 1.7 and summary["steps"] == 2
    assert summary["top_by"] == "self_device_time_total"
    assert [op["op"] for op in summary["top"]] == ["aten::mm", "aten::_flash_attention_backward", "ProfilerStep*"]
    assert summary["top"][0] == {"op": "aten::mm", "calls": 96, "self_cpu_ms": 2.0, "self_device_ms": 600.0}
    assert [op["op"] for op in summary["top_kernels"]] == ["sm90_xmma_gemm_bf16", "flash_bwd_kernel"]
    text = (tmp_path / "ops.txt").read_text()
    assert text.index("by own device time:") < text.index("by own CPU time:") and "sm90_xmma_gemm_bf16" in text
    assert traces == [str(tmp_path / "trace.json.gz")]
    # scripts/gpu_report.py reads this summary as the device run will return it
    results = tmp_path / "results.jsonl"
    results.write_text(json.dumps({"step": "profile", "torch_profile": summary}) + "\n")
    report = subprocess.run([sys.executable, str(REPO / "scripts" / "gpu_report.py"), str(results)],
                            capture_output=True, text=True, check=True).stdout  # fmt: skip
    assert ("| steps 3-4 | 2 | 1.7 | 0.85 (50.00 %) | `aten::mm` 600 ms, `aten::_flash_attention_backward` 250 ms, "
            "`ProfilerStep*` 0 ms | `sm90_xmma_gemm_bf16` 600 ms, `flash_bwd_kernel` 250 ms |") in report  # fmt: skip
