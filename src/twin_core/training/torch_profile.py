"""Where a training step's time goes: a torch.profiler record of two optimizer steps
(``TWIN_TRAINING_TORCH_PROFILE=DIR``; off by default, since profiling slows the steps it records).

Step 1 is left out (it pays for what is done once: ``first_step_s``), step 2 warms the profiler up, and
steps 3 and 4 are recorded. DIR then holds:

- ``ops.txt``: torch's operator table, by the operators' own device time (a GPU), then by their own CPU time;
- ``summary.json``: the recorded steps, their wall seconds, the seconds the device spent in kernels (on a GPU;
  the rest of the wall time it waited on the CPU, the Python that launches the kernels), the top operators;
- ``trace.json.gz``: the timeline, for https://ui.perfetto.dev or chrome://tracing.

A run that ends after step 3 records that one step; one that ends before it records nothing and says so
in the log.
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

WAIT, WARMUP, ACTIVE = 1, 1, 2  # optimizer steps: left out, profiler warm-up, recorded
TOP = 25  # operators in each table and in the summary


def profile_callback(out: Path) -> Any:
    """A TrainerCallback that records steps 3-4 of the run into ``out``; ``.written`` once it has."""
    import torch
    from transformers import TrainerCallback

    class TorchProfile(TrainerCallback):
        def __init__(self) -> None:
            self.written = False
            self._profiler: Any = None
            self._recording_since = 0.0
            self._steps = 0

        def on_train_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> Any:
            activities = [torch.profiler.ProfilerActivity.CPU]
            if torch.cuda.is_available():
                activities.append(torch.profiler.ProfilerActivity.CUDA)
            schedule = torch.profiler.schedule(wait=WAIT, warmup=WARMUP, active=ACTIVE, repeat=1)
            self._profiler = torch.profiler.profile(
                activities=activities, schedule=schedule, on_trace_ready=self._write
            )
            self._profiler.start()
            return control

        def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> Any:
            if self._profiler is None:
                return control
            self._steps += 1
            self._profiler.step()  # after the warm-up step this opens the recorded window
            if self._steps == WAIT + WARMUP:
                self._recording_since = time.perf_counter()
            return control

        def on_train_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> Any:
            if self._profiler is not None:
                self._profiler.stop()
                self._profiler = None
            if not self.written:
                log.warning("TWIN_TRAINING_TORCH_PROFILE: the run ended after %d steps; steps %d-%d are the ones "
                            "recorded", self._steps, WAIT + WARMUP + 1, WAIT + WARMUP + ACTIVE)  # fmt: skip
            return control

        def _write(self, prof: Any) -> None:  # at the window's end, or at stop() when the run ended inside it
            steps = self._steps - WAIT - WARMUP
            if steps < 1:
                return
            write_profile(prof, out, steps, time.perf_counter() - self._recording_since)
            self.written = True
            log.info("TWIN_TRAINING_TORCH_PROFILE: steps %d-%d recorded in %s", WAIT + WARMUP + 1,
                     WAIT + WARMUP + steps, out)  # fmt: skip

    return TorchProfile()


def write_profile(prof: Any, out: Path, steps: int, wall_s: float) -> dict[str, Any]:
    """ops.txt, summary.json and trace.json.gz from a finished profiler window of ``steps`` steps. The
    device's busy time sums the kernels' own time, as torch's table does: an operator's own device time
    is its kernels' time again."""
    from torch.autograd import DeviceType

    out.mkdir(parents=True, exist_ok=True)
    events = prof.key_averages()
    kernels = [e for e in events if e.device_type != DeviceType.CPU and not getattr(e, "is_user_annotation", False)]
    operators = [e for e in events if e.device_type == DeviceType.CPU]
    device_us = sum(e.self_device_time_total for e in kernels)
    key = "self_device_time_total" if device_us else "self_cpu_time_total"
    tables = [f"by own device time:\n{events.table(sort_by=key, row_limit=TOP)}"] if device_us else []
    tables.append(f"by own CPU time:\n{events.table(sort_by='self_cpu_time_total', row_limit=TOP)}")
    (out / "ops.txt").write_text("\n\n".join(tables))
    summary = {
        "steps": steps,
        "wall_s": round(wall_s, 3),
        "device_busy_s": round(device_us / 1e6, 3) if device_us else None,  # None: no device recorded
        "top_by": key,
        "top": [_op(e) for e in _largest(operators, key)],  # the operators that launched the work
        "top_kernels": [_op(e) for e in _largest(kernels, key)] if device_us else [],
    }
    (out / "summary.json").write_text(json.dumps(summary, indent=1))
    prof.export_chrome_trace(str(out / "trace.json.gz"))
    return summary


def _largest(events: list[Any], key: str) -> list[Any]:
    return sorted(events, key=lambda e: getattr(e, key), reverse=True)[:TOP]


def _op(event: Any) -> dict[str, Any]:
    return {"op": event.key, "calls": event.count, "self_cpu_ms": round(event.self_cpu_time_total / 1e3, 3),
            "self_device_ms": round(event.self_device_time_total / 1e3, 3)}  # fmt: skip
