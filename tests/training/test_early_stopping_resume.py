"""Early stopping across a kill: the best checkpoint so far stays stored beside the newest, a --resume in a fresh
work folder ends on the best weights (as an uninterrupted run does), and a run killed after early stopping had
stopped it is taken as it is, not trained past the stop. A tiny random Llama at a learning rate that makes
every step after the first worse on the held-out split (deterministic: seed 42, one thread)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from training_fixtures import TWIN_BIN_PATH, killed_after_checkpoint, run_json

pytestmark = pytest.mark.slow


def _early_stopping_profile(tiny_random: Path, folder: Path) -> Path:
    profile = yaml.safe_load(tiny_random.read_text())
    profile["sft"].update(learning_rate=0.5, max_steps=6, early_stopping_patience=3)
    path = folder / "early-stopping.yaml"
    path.write_text(yaml.safe_dump(profile))
    return path


def _stored(settings: Any) -> dict[int, Path]:
    """step -> stored checkpoint folder of the (one) run."""
    found = Path(settings.artifacts_location).glob("training/*/checkpoints/*/metadata.json")
    return {json.loads(p.read_text())["step"]: p.parent for p in found}


def _tensors(path: Path) -> dict[str, list[float]]:
    from safetensors.torch import load_file

    return {k: v.flatten().tolist() for k, v in load_file(str(path)).items()}


def test_a_run_killed_after_its_best_checkpoint_resumes_and_ends_on_the_best_weights(
    train_env: dict[str, str], tsettings: Any, instruct_version: str, tiny_random: Path, tmp_path: Path
) -> None:
    from twin_core.stores.registry import open_registry

    profile = _early_stopping_profile(tiny_random, tmp_path)
    env = {**os.environ, **train_env, "TWIN_TRAINING_MAX_STEPS": "6", "TWIN_TRAINING_CHECKPOINT_STEPS": "1",
           "TWIN_TRAINING_KEEP_CHECKPOINTS": "1"}  # fmt: skip
    args = ["train", "sft", "--dataset", instruct_version, "--profile", str(profile)]
    killed = subprocess.run([sys.executable, "-c", killed_after_checkpoint(3), *args], env=env, check=False)
    assert killed.returncode == -signal.SIGKILL
    assert sorted(_stored(tsettings)) == [1, 3]  # the newest, and the best so far

    resumed = run_json([TWIN_BIN_PATH, *args, "--resume"], env)
    assert resumed["status"] == "ok", resumed
    assert resumed["resumed_from_step"] == 3
    (version,) = open_registry(tsettings).list()
    metrics = version.metadata["metrics"]
    assert (metrics["global_step"], metrics["best_step"]) == (4, 1)  # stopped after 3 evaluations without a lower loss
    assert sorted(_stored(tsettings)) == [1, 4]
    adapter = Path(tsettings.artifacts_location) / "models" / "ada-quillfeather" / "v0001" / "adapter"
    assert _tensors(adapter / "adapter_model.safetensors") == _tensors(
        _stored(tsettings)[1] / "adapter_model.safetensors"
    )

    # killed while registering, after early stopping had stopped it: taken as it is, nothing trained
    again = run_json([TWIN_BIN_PATH, *args, "--resume"], env)
    assert (again["status"], again["model"], again["resumed_from_step"]) == ("ok", resumed["model"], 4)
    assert [v.ref for v in open_registry(tsettings).list()] == ["ada-quillfeather/v0001"]
    assert sorted(_stored(tsettings)) == [1, 4]
