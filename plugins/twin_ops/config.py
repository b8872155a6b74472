"""Execution settings for DAG tasks: the mode (TWIN_EXECUTION) and configs/execution.yaml.

Read at DAG parse time, so it stays cheap: one small YAML file, cached per process.
"""

from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path
from typing import Any

import yaml
from airflow.sdk.exceptions import AirflowFailException

MODES = ("local", "kubernetes")
_REPO_ROOT = Path(__file__).resolve().parents[2]


def execution_mode() -> str:
    mode = os.environ.get("TWIN_EXECUTION", "local").strip().lower()
    if mode not in MODES:
        raise ValueError(f"TWIN_EXECUTION must be one of {', '.join(MODES)} (got {mode!r})")
    return mode


# Where the repo's configs/ folder is: next to plugins/ in a checkout, /opt/airflow/configs in the images.
CONFIG_ROOTS = (_REPO_ROOT / "configs", Path("/opt/airflow/configs"))


def find_config(relative: str, env_var: str) -> Path:
    """The one path search for every config the DAGs read: ``$env_var`` if set, else the first of
    ``CONFIG_ROOTS`` holding ``relative`` (a file or a folder), else the first root's path (absent)."""
    explicit = os.environ.get(env_var)
    if explicit:
        return Path(explicit)
    for root in CONFIG_ROOTS:
        if (root / relative).exists():
            return root / relative
    return CONFIG_ROOTS[0] / relative


def config_path() -> Path:
    path = find_config("execution.yaml", "TWIN_EXECUTION_CONFIG")
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found; set TWIN_EXECUTION_CONFIG")
    return path


@lru_cache(maxsize=4)
def _load(path: str) -> dict[str, Any]:
    with open(path, encoding="utf-8") as fh:
        return yaml.safe_load(fh)


def execution_config() -> dict[str, Any]:
    """The YAML config with env overrides applied (namespace, service accounts, registry, tag)."""
    cfg = dict(_load(str(config_path())))
    cfg["namespace"] = os.environ.get("TWIN_K8S_NAMESPACE", cfg["namespace"])
    cfg["service_account"] = os.environ.get("TWIN_K8S_SERVICE_ACCOUNT", cfg["service_account"])
    cfg["deployer_service_account"] = os.environ.get(  # a file from before the key: the chart's default name
        "TWIN_K8S_DEPLOYER_SERVICE_ACCOUNT", cfg.get("deployer_service_account", "llm-twin-deployer")
    )
    images = dict(cfg["images"])
    images["registry"] = os.environ.get("TWIN_IMAGE_REGISTRY", images["registry"])
    images["tag"] = os.environ.get("TWIN_IMAGE_TAG", images["tag"])
    cfg["images"] = images
    return cfg


class UnknownProfile(AirflowFailException, ValueError):
    """A pod profile configs/execution.yaml lacks: a planning task fails at once (a retry reads the same
    configs); a DAG file naming one fails to parse, as a ValueError."""


def profile(name: str) -> dict[str, Any]:
    """A pod profile of configs/execution.yaml; ``UnknownProfile`` if there is none of that name."""
    profiles = execution_config()["profiles"]
    if name not in profiles:
        raise UnknownProfile(f"unknown resource profile {name!r} (known: {', '.join(profiles)})")
    return profiles[name]


def image_for(profile_name: str) -> str:
    cfg = execution_config()
    return f"{cfg['images']['registry']}/{profile(profile_name)['image']}:{cfg['images']['tag']}"


def twin_bin() -> str:
    """The twin_core environment's `twin` executable, for local mode."""
    explicit = os.environ.get("TWIN_BIN")
    if explicit:
        return explicit
    candidate = _REPO_ROOT / ".venv" / "bin" / "twin"
    if candidate.exists():
        return str(candidate)
    return "twin"


def training_profiles() -> list[str]:
    """The training profiles (configs/training/<name>.yaml, or TWIN_TRAINING_PROFILES_DIR), for the form's
    proposals: a folder listing, cheap at parse time. ``accelerate-*`` files configure a launcher, not a run."""
    folder = find_config("training", "TWIN_TRAINING_PROFILES_DIR")  # the variable if set, else configs/training
    names = {p.stem for p in folder.glob("*.yaml")} if folder.is_dir() else set()
    return sorted(n for n in names if not n.startswith("accelerate-"))


def training_pod_profile(training_profile: str) -> str:
    """The pod profile (``profiles`` above) a training profile (configs/training/<name>.yaml) runs in:
    its ``execution_profile``; for an unknown profile, ``cpu-train`` for cpu-* names, else ``gpu`` (both on
    the trainer image: ``cpu``'s twin-core has no train extra). Read when a run is planned (the profile is
    the run's choice), never when the DAG is parsed."""
    path = Path(os.environ.get("TWIN_TRAINING_PROFILES_DIR") or "/nonexistent") / f"{training_profile}.yaml"
    if not path.is_file():  # twin_core's own search: TWIN_TRAINING_PROFILES_DIR, then configs/training
        path = find_config(f"training/{training_profile}.yaml", "TWIN_TRAINING_PROFILE_FILE")
    if not path.is_file():
        name = "cpu-train" if training_profile.startswith("cpu") else "gpu"
    else:
        name = str((_load(str(path)) or {}).get("execution_profile") or "gpu")
    profile(name)  # an unknown pod profile fails the planning task, before any pod starts
    return name
