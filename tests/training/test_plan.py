"""The plan phase of a training run on its own: pure (no model, no folder, no registry write), cheap."""

from __future__ import annotations

from pathlib import Path

import pytest

from twin_core.errors import InputError


def test_plan_is_pure_and_deterministic(tsettings, instruct_version) -> None:
    from twin_core.training.run import plan_training

    plan = plan_training(tsettings, "sft", instruct_version, profile_name="tiny-test")
    again = plan_training(tsettings, "sft", instruct_version, profile_name="tiny-test")
    assert plan == again and len(plan.run_id) == 16
    assert (plan.kind, plan.steps, plan.checkpoint_steps, plan.parent_ref, plan.evaluate) == ("sft", 4, 2, None, False)
    assert plan.params["train_rows"] == len(plan.data.train) and plan.params["run_id"] == plan.run_id
    assert not (tsettings.home / "training").exists()  # nothing written, no model loaded

    cpu_small = str(Path(__file__).resolve().parents[2] / "configs" / "training" / "cpu-small.yaml")
    other = plan_training(tsettings, "sft", instruct_version, profile_name=cpu_small)
    assert other.run_id != plan.run_id  # another profile, another run (what --resume looks for)
    assert other.evaluate  # early stopping on the held-out split: the test split is scored during training


def test_plan_refuses_dpo_without_parent(tsettings, preference_version) -> None:
    from twin_core.training.run import plan_training

    with pytest.raises(InputError, match="--from"):
        plan_training(tsettings, "dpo", preference_version, profile_name="tiny-test")
    with pytest.raises(InputError):
        plan_training(tsettings, "sft", preference_version, profile_name="tiny-test")  # wrong kind of dataset
