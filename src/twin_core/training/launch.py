"""Multi-GPU profiles (``accelerate`` in the profile, e.g. gpu-70b): re-launch under ``accelerate launch``.

``twin train sft --profile gpu-70b`` started in a pod with N GPUs runs
``accelerate launch --config_file <profile's FSDP config> --num_processes N -m twin_core.cli.main
train sft ...`` (same arguments); each rank trains its FSDP shard, rank 0 checkpoints, registers and
writes the step result, which the launcher passes on. Beyond one node the same command runs as a
Kubeflow Trainer TrainJob (docs/training.md), never a home-made launcher.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from twin_core.errors import TwinError
from twin_core.settings import Settings
from twin_core.training.peft_model import check_device
from twin_core.training.profiles import TrainingProfile, load_profile

RESULT_ENV = "TWIN_TRAINING_RESULT_FILE"


def launched_by_accelerate() -> bool:
    return "LOCAL_RANK" in os.environ or "ACCELERATE_PROCESS_ID" in os.environ


def launch_command(profile: TrainingProfile, argv: list[str]) -> list[str]:
    assert profile.accelerate is not None
    return [
        sys.executable, "-m", "accelerate.commands.launch",
        "--config_file", profile.accelerate.config_file,
        "--num_processes", str(profile.accelerate.num_processes),
        "-m", "twin_core.cli.main", *argv,
    ]  # fmt: skip


def maybe_relaunch(settings: Settings, profile_name: str | None) -> dict[str, Any] | None:
    """Run the command under accelerate when the profile asks for it; None = train in this process."""
    profile = load_profile(settings, profile_name)
    if not profile.accelerate or launched_by_accelerate():
        return None
    check_device(profile)  # never launch N CPU ranks of a 70B model
    with tempfile.TemporaryDirectory() as tmp:
        result_file = Path(tmp) / "result.json"
        env = {**os.environ, RESULT_ENV: str(result_file), "TWIN_XCOM_PATH": str(Path(tmp) / "rank-xcom.json")}
        proc = subprocess.run(launch_command(profile, sys.argv[1:]), env=env, check=False)
        if result_file.is_file():
            return json.loads(result_file.read_text())
        err = TwinError(f"accelerate launch of profile {profile.name} exited {proc.returncode} without a result")
        raise err


def publish_result(result: dict[str, Any]) -> None:
    """Rank 0 under accelerate: hand the step result to the launcher."""
    path = os.environ.get(RESULT_ENV)
    if path:
        Path(path).write_text(json.dumps(result, default=str))
