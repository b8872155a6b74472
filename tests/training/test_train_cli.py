"""`twin train sft` then `twin train dpo` end to end (tiny profile), a killed run resumed, Comet archives."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import zipfile
from pathlib import Path

import pytest
from training_fixtures import AUTHOR, TWIN_BIN_PATH

pytestmark = pytest.mark.slow


def _comet_metrics(zip_path: Path) -> dict[str, list[float]]:
    """metric name -> values, read from a Comet offline archive."""
    found: dict[str, list[float]] = {}
    with zipfile.ZipFile(zip_path) as zf:
        for name in zf.namelist():
            if not name.endswith(".json"):
                continue
            for line in zf.read(name).decode("utf-8", "replace").splitlines():
                try:
                    msg = json.loads(line)
                except json.JSONDecodeError:
                    continue
                metric = (msg.get("payload") or {}).get("metric") if isinstance(msg, dict) else None
                if metric and "metricName" in metric:
                    found.setdefault(metric["metricName"], []).append(float(metric["metricValue"]))
    return found


def test_sft_then_dpo_registers_candidates(twin, train_env, tsettings, instruct_version, preference_version) -> None:
    from twin_core.stores.registry import open_registry

    env = {**train_env, "TWIN_PROGRESS": "1"}  # the bar drawn, as for a person at a terminal
    sft = twin("train", "sft", "--dataset", instruct_version, "--profile", "tiny-test", env=env)
    assert sft.returncode == 0, sft.stderr[-3000:]
    lines = sft.stdout.splitlines()  # the CLI contract: exactly the one JSON result line (no trainer log dicts)
    assert len(lines) == 1 and json.loads(lines[0]) == sft.result
    assert "'loss':" not in sft.stderr  # no log dicts on stderr either: the progress bar instead
    assert "train sft ada-quillfeather" in sft.stderr and "4/4" in sft.stderr and "tokens_s=" in sft.stderr
    r = sft.result
    assert (r["model"], r["stage"], r["steps"], r["resumed_from_step"]) == (
        "ada-quillfeather/v0001",
        "candidate",
        4,
        None,
    )
    m = r["metrics"]
    assert m["last_loss"] < m["first_loss"]
    assert m["perplexity_trained"] < m["perplexity_base"]  # moved toward the author's held-out text
    assert m["first_step_s"] > 0 and m["median_step_s"] > 0  # 4 steps timed
    assert "peak_memory_gib" not in m and "micro_batch" not in m  # a CPU profile: no GPU memory to fit or report
    assert "held-out perplexity base" in sft.stderr

    reg = open_registry(tsettings)
    mv = reg.get(r["model"])
    assert mv.author == AUTHOR and mv.metadata["dataset_versions"] == [instruct_version]
    assert mv.metadata["comet_experiment_key"] == r["comet_experiment_key"] and not mv.metadata["comet_online"]
    assert mv.metadata["config"]["profile"]["name"] == "tiny-test" and mv.metadata["metrics"] == m
    for needed in (
        "merged/config.json",
        "merged/model.safetensors",
        "merged/tokenizer.json",
        "adapter/adapter_config.json",
        "adapter/adapter_model.safetensors",
        mv.metadata["comet_archive"],
    ):
        assert needed in mv.files, needed  # fmt: skip
    archive = Path(mv.storage_uri).parent / mv.metadata["comet_archive"]
    losses = _comet_metrics(archive)["loss"]
    assert len(losses) == 4 and losses[0] == pytest.approx(m["first_loss"])

    from transformers import AutoModelForCausalLM

    assert AutoModelForCausalLM.from_pretrained(reg.local_weights(mv.ref)).config.model_type == "llama"

    dpo = twin(
        "train", "dpo", "--dataset", preference_version, "--from", mv.ref, "--profile", "tiny-test", env=train_env
    )
    assert dpo.returncode == 0, dpo.stderr[-3000:]
    d = open_registry(tsettings).get(dpo.result["model"])
    assert d.version == "v0002" and d.stage == "candidate" and d.metadata["kind"] == "dpo"
    assert d.metadata["parent"] == mv.ref
    assert d.metadata["dataset_versions"] == [preference_version, instruct_version]
    assert "rewards_margins" in d.metadata["metrics"] and d.metadata["comet_archive"] in d.files
    assert "loss" in _comet_metrics(Path(d.storage_uri).parent / d.metadata["comet_archive"])


def test_killed_run_resumes_from_its_checkpoint(train_env, tsettings, instruct_version, tiny_random, tmp_path) -> None:
    """SIGKILL after the first checkpoint (step 2 of 4); --resume continues at step 3 and registers once.
    The resume splits each step otherwise (1 sequence x 2 accumulation for 2 x 1), as fit_memory may on
    another card (the run id is the profile's): steps 3-4 still see the uninterrupted run's sequences, so
    the losses match it (a 1 x 1 resume, other sequences per step, does not: checked by hand).
    A tiny random Llama: the test is about resuming, not learning (test above)."""
    import sys

    from training_fixtures import KILLED_AFTER_FIRST_CHECKPOINT, OTHER_SPLIT, run_json

    from twin_core.stores.registry import open_registry

    args = ["train", "sft", "--dataset", instruct_version, "--profile", str(tiny_random)]
    cmd = [TWIN_BIN_PATH, *args]
    env = {**os.environ, **train_env}
    killed = subprocess.run([sys.executable, "-c", KILLED_AFTER_FIRST_CHECKPOINT, *args], env=env, check=False)
    assert killed.returncode == -signal.SIGKILL
    checkpoints = sorted(Path(tsettings.artifacts_location).glob("training/*/checkpoints/*/metadata.json"))
    assert [json.loads(p.read_text())["step"] for p in checkpoints] == [2]
    assert open_registry(tsettings).list() == []

    resumed = run_json([sys.executable, "-c", OTHER_SPLIT, *args, "--resume"], env)
    assert resumed["status"] == "ok", resumed
    assert resumed["resumed_from_step"] == 2 and resumed["steps"] == 4
    again = run_json([*cmd, "--resume"], env)  # a retried task: same model, still one version
    assert again["model"] == resumed["model"]
    versions = open_registry(tsettings).list()
    assert [v.ref for v in versions] == ["ada-quillfeather/v0001"]
    curve = versions[0].metadata["loss_curve"]
    assert [step for step, _ in curve] == [1, 2, 3, 4]  # steps 1-2 from the checkpoint's state, then 3-4
    metrics = versions[0].metadata["metrics"]  # the mean over all 4 steps, not Trainer's over steps 3-4
    assert metrics["train_loss"] == round(sum(loss for _, loss in curve) / 4, 4)
    assert "train_loss_since_resume" not in metrics
    archive = Path(versions[0].storage_uri).parent / versions[0].metadata["comet_archive"]
    assert len(_comet_metrics(archive)["loss"]) == 2  # the resumed process trained steps 3 and 4 only

    # same data order: the resumed steps are the steps of an uninterrupted run
    fresh_env = {**env, "TWIN_HOME": str(tmp_path / "fresh")}
    from training_fixtures import sample_rows, write_dataset

    from twin_core.settings import load_settings

    train, test = sample_rows()
    write_dataset(load_settings(home=tmp_path / "fresh"), "instruct", train, test)
    full = run_json(cmd, fresh_env)
    full_curve = json.loads(
        (tmp_path / "fresh" / "artifacts" / "models" / "ada-quillfeather" / "v0001" / "metadata.json").read_text()
    )["loss_curve"]
    assert full["steps"] == 4
    assert [round(loss, 3) for _, loss in full_curve] == [round(loss, 3) for _, loss in curve]
