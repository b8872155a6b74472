"""Where a training step's time goes: a torch.profiler record of the first optimizer step and of two
steady ones (``TWIN_TRAINING_TORCH_PROFILE=DIR``; off by default, since profiling slows the steps it
records). Each run writes into its own folder, ``DIR/<sft|dpo>-<run id>`` (RUN below).

Step 1 pays for what is done once (``first_step_s``): it is recorded on its own, into ``RUN/first-step``.
Step 2 warms the profiler up again, and steps 3 and 4 are recorded into RUN. Each folder holds:

- ``ops.txt``: torch's operator table, by the operators' own device time (a GPU), then by their own CPU time;
- ``summary.json``: the recorded steps, their wall seconds, the seconds the device spent in kernels (on a GPU;
  the rest of the wall time it waited on the CPU, the Python that launches the kernels), the top operators
  and kernels;
- ``trace.json.gz``: the timeline, for https://ui.perfetto.dev or chrome://tracing.

A run that ends after step 3 records that one steady step; one that ends sooner records only step 1 and
says so in the log.
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

TOP = 25  # operators in each table and in the summary
STEADY = (3, 4)  # the optimizer steps recorded together, after step 1 alone and a warm-up step


def _schedule(step: int) -> Any:
    """torch.profiler's action for profiler step ``step`` (0-based: optimizer step ``step + 1``)."""
    from torch.profiler import ProfilerAction

    actions = {0: ProfilerAction.RECORD_AND_SAVE, 1: ProfilerAction.WARMUP, 2: ProfilerAction.RECORD,
               3: ProfilerAction.RECORD_AND_SAVE}  # fmt: skip
    return actions.get(step, ProfilerAction.NONE)


def profile_callback(out: Path) -> Any:
    """A TrainerCallback that records step 1 into ``out/first-step`` and steps 3-4 into ``out``;
    ``.written`` lists the folders written."""
    import warnings

    import torch
    from transformers import TrainerCallback

    # each window is its own record on purpose: torch warns that the second one starts empty
    warnings.filterwarnings("ignore", message="Warning: Profiler clears events at the end of each cycle")

    class TorchProfile(TrainerCallback):
        def __init__(self) -> None:
            self.written: list[Path] = []
            self._profiler: Any = None
            self._since = 0.0  # when the window being recorded began
            self._steps = 0

        def on_train_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> Any:
            activities = [torch.profiler.ProfilerActivity.CPU]
            if torch.cuda.is_available():
                activities.append(torch.profiler.ProfilerActivity.CUDA)
            self._profiler = torch.profiler.profile(
                activities=activities, schedule=_schedule, on_trace_ready=self._write
            )
            self._since = time.perf_counter()
            self._profiler.start()
            return control

        def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> Any:
            if self._profiler is None:
                return control
            self._steps += 1
            self._profiler.step()  # closes step 1's window after step 1; opens the steady one after step 2
            if self._steps == STEADY[0] - 1:
                self._since = time.perf_counter()
            return control

        def on_train_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> Any:
            if self._profiler is not None:
                self._profiler.stop()
                self._profiler = None
            if len(self.written) < 2:
                log.warning("TWIN_TRAINING_TORCH_PROFILE: the run ended after %d steps; steps %d-%d, the steady "
                            "ones, were not recorded", self._steps, *STEADY)  # fmt: skip
            return control

        def _write(self, prof: Any) -> None:  # at a window's end, or at stop() when the run ended inside it
            first = not self.written
            steps = 1 if first else self._steps - STEADY[0] + 1
            if steps < 1:
                return
            folder = out / "first-step" if first else out
            write_profile(prof, folder, steps, time.perf_counter() - self._since)
            self.written.append(folder)
            log.info("TWIN_TRAINING_TORCH_PROFILE: %s recorded in %s", "step 1" if first else "the steady steps",
                     folder)  # fmt: skip

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
    tables = (
        [f"by own device time:\n{events.table(sort_by='self_device_time_total', row_limit=TOP)}"] if device_us else []
    )
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
