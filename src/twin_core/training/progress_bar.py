"""The ``twin train`` progress bar: optimizer steps, the last loss and tokens/s, on stderr.

Transformers' own PrinterCallback/ProgressCallback print each log dict (to stdout); ``quiet_trainer``
removes them and the bar of ``twin_core.progress`` takes their place (silent unless a caller injects
``progress``, as the CLI does).
"""

from __future__ import annotations

import logging
import math
import time
from typing import Any

from twin_core.progress import ProgressFactory

log = logging.getLogger(__name__)


def held_out_line(step: int, loss: float, best: float | None, best_step: int | None) -> str:
    """The log line of one held-out evaluation, against the best before it (``best``, ``best_step``):
    what early stopping and the kept checkpoint go by."""
    line = f"held-out loss {loss:.4f} (perplexity {math.exp(loss):.2f}) at step {step}"
    if best is None or best_step is None or loss < best:
        return f"{line}: the best so far"
    return f"{line}; the best is still {best:.4f} at step {best_step}"


def quiet_trainer(trainer: Any) -> None:
    """No log dicts printed by the Trainer itself (they go to Comet and the result instead)."""
    from transformers.trainer_callback import PrinterCallback, ProgressCallback

    for cls in (PrinterCallback, ProgressCallback):
        trainer.remove_callback(cls)


def progress_callback(progress: ProgressFactory, desc: str) -> Any:
    """A TrainerCallback drawing ``progress(total=max_steps)``: one tick per optimizer step."""
    from transformers import TrainerCallback

    class TrainProgress(TrainerCallback):
        bar: Any = None
        started = 0.0
        tokens_at_start = 0

        def on_train_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> Any:
            if state.is_world_process_zero:
                self.bar = progress(total=state.max_steps, desc=desc, unit="step")
                self.bar.update(state.global_step)  # a resumed run starts where it stopped
                self.started, self.tokens_at_start = time.perf_counter(), int(state.num_input_tokens_seen or 0)
            return control

        def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> Any:
            if self.bar is not None:
                self.bar.update(1)
            return control

        def on_log(self, args: Any, state: Any, control: Any, logs: dict | None = None, **kwargs: Any) -> Any:
            if self.bar is not None and logs and "loss" in logs and hasattr(self.bar, "set_postfix"):
                seconds = max(time.perf_counter() - self.started, 1e-9)
                tokens = int(state.num_input_tokens_seen or 0) - self.tokens_at_start
                self.bar.set_postfix(loss=f"{float(logs['loss']):.3f}", tokens_s=f"{tokens / seconds:.0f}")
            return control

        def on_evaluate(self, args: Any, state: Any, control: Any, metrics: dict | None = None, **kw: Any) -> Any:
            if state.is_world_process_zero and metrics and "eval_loss" in metrics:
                # called before the Trainer records a new best: state holds the best of the earlier checks
                best_step = int(state.best_global_step) if state.best_global_step else None
                log.info(held_out_line(state.global_step, float(metrics["eval_loss"]), state.best_metric, best_step))
            return control

        def on_train_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> Any:
            if state.is_world_process_zero and state.best_global_step and state.global_step < state.max_steps:
                log.info(f"early stopping at step {state.global_step} of {state.max_steps}: keeping step "
                         f"{state.best_global_step} (held-out loss {state.best_metric:.4f})")  # fmt: skip
            if self.bar is not None:
                self.bar.close()
                self.bar = None
            return control

    return TrainProgress()
