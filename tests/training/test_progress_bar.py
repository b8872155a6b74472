"""`twin train`'s log says what each held-out evaluation found and where early stopping stopped."""

from __future__ import annotations

import logging
import math
from types import SimpleNamespace

from twin_core.progress import silent
from twin_core.training.progress_bar import held_out_line, progress_callback


def test_held_out_line_against_the_best_before_it() -> None:
    first = held_out_line(5, 3.0, None, None)
    assert first == f"held-out loss 3.0000 (perplexity {math.exp(3.0):.2f}) at step 5: the best so far"
    assert held_out_line(10, 2.5, 3.0, 5).endswith("at step 10: the best so far")
    assert held_out_line(15, 2.75, 2.5, 10) == (
        f"held-out loss 2.7500 (perplexity {math.exp(2.75):.2f}) at step 15; the best is still 2.5000 at step 10"
    )


def test_callback_logs_each_evaluation_and_the_early_stop(caplog) -> None:
    callback = progress_callback(silent, "train sft ada")
    state = SimpleNamespace(is_world_process_zero=True, global_step=10, max_steps=120, best_metric=2.5,
                            best_global_step=5, num_input_tokens_seen=0)  # fmt: skip
    with caplog.at_level(logging.INFO, logger="twin_core.training.progress_bar"):
        callback.on_evaluate(None, state, None, metrics={"eval_loss": 2.6, "eval_runtime": 1.0})
        callback.on_evaluate(None, state, None, metrics={"epoch": 1.0})  # no held-out loss: no line
        state.global_step = 25
        callback.on_train_end(None, state, None)
        state.global_step = state.max_steps  # ran to the end: nothing to say
        callback.on_train_end(None, state, None)
    assert [r.getMessage() for r in caplog.records] == [
        f"held-out loss 2.6000 (perplexity {math.exp(2.6):.2f}) at step 10; the best is still 2.5000 at step 5",
        "early stopping at step 25 of 120: keeping step 5 (held-out loss 2.5000)",
    ]
