"""The plan phase of a training run on its own: pure (no model, no folder, no registry write), cheap."""

from __future__ import annotations

from pathlib import Path

import pytest

from twin_core.errors import InputError


def test_plan_is_pure_and_deterministic(tsettings, instruct_version) -> None:
    from twin_core.training.plan import plan_training

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
    from twin_core.training.plan import plan_training

    with pytest.raises(InputError, match="--from"):
        plan_training(tsettings, "dpo", preference_version, profile_name="tiny-test")
    with pytest.raises(InputError):
        plan_training(tsettings, "sft", preference_version, profile_name="tiny-test")  # wrong kind of dataset


TINY = Path(__file__).parent / "profiles" / "tiny-test.yaml"


def _variant(tmp_path: Path, name: str, old: str, new: str) -> str:
    text = TINY.read_text()
    assert old in text
    (tmp_path / f"{name}.yaml").write_text(text.replace(old, new))
    return str(tmp_path / f"{name}.yaml")


def test_run_id_ignores_what_does_not_train(tsettings, instruct_version, tmp_path: Path) -> None:
    """description and execution_profile (the pod) change no weight: --resume finds the run after editing them."""
    from twin_core.training.plan import plan_training

    plan = plan_training(tsettings, "sft", instruct_version, profile_name="tiny-test")
    edited = _variant(tmp_path, "edited", "execution_profile: cpu\n", "execution_profile: cpu-train\n"
                      "description: a longer note about this profile\n")  # fmt: skip
    same = plan_training(tsettings, "sft", instruct_version, profile_name=edited)
    assert same.profile.execution_profile == "cpu-train" and same.profile.description
    assert same.run_id == plan.run_id
    assert same.params["profile"]["execution_profile"] == "cpu-train"  # still recorded with the model
    seed = _variant(tmp_path, "seed", "seed: 42", "seed: 43")
    assert plan_training(tsettings, "sft", instruct_version, profile_name=seed).run_id != plan.run_id
    rank = _variant(tmp_path, "rank", "lora: {r: 4,", "lora: {r: 8,")
    assert plan_training(tsettings, "sft", instruct_version, profile_name=rank).run_id != plan.run_id


def test_resume_without_checkpoint_warns_and_names_the_runs_that_have_one(
    tsettings, instruct_version, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    from twin_core.stores.artifacts import open_artifact_store
    from twin_core.training import checkpoints
    from twin_core.training.plan import plan_training
    from twin_core.training.run import _resume_point

    plan = plan_training(tsettings, "sft", instruct_version, profile_name="tiny-test", resume=True)
    store = open_artifact_store(tsettings)
    labels = {"kind": "sft", "dataset": instruct_version}
    store.put_version(
        checkpoints.checkpoints_name("0123456789abcdef"), {"a.bin": b"x"}, {"step": 2, "run_id": "x", **labels}
    )
    other = {**labels, "dataset": "instruct/someone-else/v0001"}
    store.put_version(
        checkpoints.checkpoints_name("fedcba9876543210"), {"a.bin": b"x"}, {"step": 4, "run_id": "y", **other}
    )
    with caplog.at_level("WARNING", logger="twin_core.training.run"):
        assert _resume_point(tsettings, plan, tmp_path / "work") == (None, 0)
    warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert warnings == [
        f"--resume: no checkpoint for run {plan.run_id} (sft {instruct_version}): training starts from step 0; "
        "runs of this dataset with checkpoints: 0123456789abcdef (step 2) "
        "(another profile, --max-steps, checkpoint interval or --from)"
    ]
    # `twin demo` runs its steps again with resume "if-any": a first run is no warning
    caplog.clear()
    quiet = plan_training(tsettings, "sft", instruct_version, profile_name="tiny-test", resume="if-any")
    with caplog.at_level("INFO", logger="twin_core.training.run"):
        assert _resume_point(tsettings, quiet, tmp_path / "work") == (None, 0)
    assert [(r.levelname, r.getMessage()) for r in caplog.records] == [
        ("INFO", f"no checkpoint of run {plan.run_id} (sft {instruct_version}) yet: training starts from step 0; "
         "runs of this dataset with checkpoints: 0123456789abcdef (step 2) "
         "(another profile, --max-steps, checkpoint interval or --from)")
    ]  # fmt: skip


def _register(settings, author: str, tag: str, kind: str | None, tmp_path: Path) -> str:  # noqa: ANN001
    import json

    from twin_core.stores.registry import open_registry

    folder = tmp_path / f"model-{tag}"
    (folder / "merged").mkdir(parents=True)
    (folder / "merged" / "config.json").write_text(json.dumps({"model_type": "llama", "tag": tag}))
    meta = {"base_model": "smollm2", **({"kind": kind} if kind else {})}
    return open_registry(settings).register(author, folder, meta).ref


def test_dpo_starts_from_the_same_authors_sft_model(tsettings, preference_version, tmp_path: Path) -> None:
    from twin_core.training.plan import plan_training

    toms = _register(tsettings, "Tom Tiny", "tom", "sft", tmp_path)
    with pytest.raises(InputError) as err:
        plan_training(tsettings, "dpo", preference_version, profile_name="tiny-test", from_ref=toms)
    assert str(err.value) == (
        f"--from {toms} is Tom Tiny's model, but {preference_version} is Ada Quillfeather's preference data: "
        "DPO starts from the same author's SFT model (ada-quillfeather/vNNNN)"
    )
    dpo = _register(tsettings, "Ada Quillfeather", "ada-dpo", "dpo", tmp_path)
    with pytest.raises(InputError, match=f"--from {dpo} is a dpo model: DPO starts from an SFT model"):
        plan_training(tsettings, "dpo", preference_version, profile_name="tiny-test", from_ref=dpo)
    sft = _register(tsettings, "Ada Quillfeather", "ada-sft", "sft", tmp_path)
    assert plan_training(tsettings, "dpo", preference_version, profile_name="tiny-test", from_ref=sft).parent_ref == sft
    untyped = _register(tsettings, "Ada Quillfeather", "ada-old", None, tmp_path)  # no kind recorded: taken as SFT
    assert plan_training(tsettings, "dpo", preference_version, profile_name="tiny-test", from_ref=untyped).parent_ref


def test_resumed_train_loss_covers_every_step() -> None:
    """Trainer's training_loss after a resume is the mean of the steps this process trained only."""
    from types import SimpleNamespace

    from twin_core.training.run import _train_or_take

    history = [{"loss": loss, "step": step} for step, loss in enumerate([4.0, 3.0, 2.0, 1.0], start=1)]

    class Resumed:
        state = SimpleNamespace(log_history=history, global_step=4)

        def train(self, resume_from_checkpoint: str | None = None) -> SimpleNamespace:
            return SimpleNamespace(training_loss=1.5)  # steps 3-4

    assert _train_or_take(Resumed(), (Path("checkpoint-2"), 2), 4) == (2.5, True)
    Resumed.state = SimpleNamespace(log_history=history[2:], global_step=4)  # steps 1-2 not in the history
    assert _train_or_take(Resumed(), (Path("checkpoint-2"), 2), 4) == (1.5, False)
    assert _train_or_take(Resumed(), None, 4) == (1.5, True)  # no resume: Trainer's mean is the run's
