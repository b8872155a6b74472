"""The record phase of a training run: save the adapter, merged weights, tokenizer and Comet archive, then
register them as a candidate version (metadata last: a version appears only complete). The identity is
the weights: a retried run that ends with the same model returns the version already registered.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from twin_core.domain import content_hash
from twin_core.settings import Settings
from twin_core.training import peft_model as models
from twin_core.training.plan import TrainingPlan


@dataclass
class Outcome:
    trainer: Any
    tokenizer: Any
    base_location: str
    metrics: dict[str, Any]
    curve: list[tuple[int, float]]
    seconds: float
    resumed_from_step: int | None
    tracker: Any


def record(settings: Settings, plan: TrainingPlan, outcome: Outcome) -> dict[str, Any]:
    """Save and register the model version (idempotent: the same weights -> the version already there)."""
    from twin_core.stores.registry import open_registry

    work = settings.home / "training" / plan.run_id
    out = work / "model"
    models.save_model_folder(outcome.trainer.model, outcome.tokenizer, out, plan.profile, outcome.base_location,
                             settings)  # fmt: skip
    archive = outcome.tracker.end(out / "comet")
    metadata = {
        "kind": plan.kind,
        "base_model": plan.base_name,
        "parent": plan.parent_ref,
        "dataset_versions": [plan.data.version_id, *plan.parent_datasets],
        "profile": plan.profile.name,
        "config": plan.params,
        "metrics": outcome.metrics,
        "loss_curve": outcome.curve,
        "comet_experiment_key": outcome.tracker.key,
        "comet_online": outcome.tracker.online,
        "comet_archive": f"comet/{archive.name}" if archive else None,
        "run_id": plan.run_id,
        "resumed_from_step": outcome.resumed_from_step,
        "prompt_version": _prompt_version(),
    }
    # identity = the weights (not the Comet archive): a retried run that ends with the same model
    # returns the version already registered
    metadata["content_hash"] = content_hash({p.relative_to(out).as_posix(): _file_hash(p) for p in _weight_files(out)})
    mv = open_registry(settings).register(plan.data.author, out, metadata)
    shutil.rmtree(work, ignore_errors=True)
    return {
        "model": mv.ref,
        "version": mv.version,
        "author": plan.data.author,
        "stage": mv.stage,
        "storage_uri": mv.storage_uri,
        "dataset": plan.data.version_id,
        "profile": plan.profile.name,
        "run_id": plan.run_id,
        "resumed_from_step": outcome.resumed_from_step,
        "steps": outcome.metrics["global_step"],
        "train_rows": len(plan.data.train),
        "test_rows": len(plan.data.test),
        "metrics": outcome.metrics,
        "comet_experiment_key": mv.metadata.get("comet_experiment_key"),  # the registered run's (a retry
        "comet_archive": mv.metadata.get("comet_archive"),  # that ends with the same weights keeps it)
        "seconds": round(outcome.seconds, 1),
    }


def _weight_files(out: Path) -> list[Path]:
    """The files that make a model (adapter_config.json lists target modules in set order: left out)."""
    from twin_core.stores.registry import ADAPTER_DIR, MERGED_DIR

    return sorted([*(out / MERGED_DIR).glob("*.safetensors"), out / MERGED_DIR / "config.json",
                   *(out / ADAPTER_DIR).glob("*.safetensors")])  # fmt: skip


def _file_hash(path: Path) -> str:
    import hashlib

    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _prompt_version() -> str:
    from twin_core.llm.prompt import PROMPT_VERSION

    return PROMPT_VERSION
