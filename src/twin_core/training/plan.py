"""The plan of a training run, decided before any model loads (``run.py`` trains it, ``record.py`` registers
the result): the profile, the dataset rows, the base model (DPO: the parent SFT version's), the steps, the
checkpoint interval and the run id. It reads the profile, the dataset version and the registry, and writes
nothing; unknown or empty data, or a DPO without a proper ``--from``, is an InputError here.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Literal

from twin_core.errors import InputError
from twin_core.settings import Settings
from twin_core.training import checkpoints, data
from twin_core.training.profiles import TrainingProfile, load_profile
from twin_core.training.trainers import Kind, stage_of

# --resume: True (asked: no checkpoint is a WARNING), False, or "if-any" (a caller that runs the same steps again,
# as `twin demo`: a run with checkpoints resumes, a first run starts quietly)
Resume = bool | Literal["if-any"]


@dataclass(frozen=True)
class TrainingPlan:
    """What one run will do: decided before any model is loaded."""

    kind: Kind
    profile: TrainingProfile
    data: data.TrainingData
    base_name: str  # the base model's name (DPO: the SFT version's base)
    parent_ref: str | None  # DPO: the SFT model version (start and reference)
    parent_datasets: list[str]
    steps: int
    checkpoint_steps: int
    run_id: str
    resume: Resume
    params: dict[str, Any] = field(default_factory=dict)

    @property
    def evaluate(self) -> bool:
        """Held-out eval loss during training (early stopping) when the stage asks and there is a split."""
        return bool(stage_of(self.profile, self.kind).early_stopping_patience and self.data.test)


def _steps(profile: TrainingProfile, kind: Kind, n_rows: int, settings: Settings) -> int:
    stage = stage_of(profile, kind)
    per_step = stage.batch_size * stage.grad_accum
    epoch_steps = max(1, math.ceil(n_rows / per_step))
    steps = stage.max_steps or max(1, math.ceil(epoch_steps * stage.epochs))
    if settings.training.max_steps:
        steps = min(steps, settings.training.max_steps)
    return steps


def plan_training(
    settings: Settings,
    kind: Kind,
    dataset_version: str,
    *,
    profile_name: str | None = None,
    from_ref: str | None = None,
    resume: Resume = False,
) -> TrainingPlan:
    """Profile, rows, base, steps and the run id; unknown/empty data or a DPO without --from -> InputError."""
    from twin_core.stores.registry import open_registry

    profile = load_profile(settings, profile_name)
    td = data.load_training_data(settings, dataset_version, "instruct" if kind == "sft" else "preference")
    parent = None
    if kind == "dpo":
        if not from_ref:
            raise InputError("twin train dpo needs --from MODEL_VERSION (the SFT model, also the DPO reference)")
        parent = open_registry(settings).get(from_ref)  # unknown -> InputError
        _check_parent(parent, td)
    else:
        _check_not_gguf(profile)
    base_name = parent.metadata.get("base_model", parent.ref) if parent else profile.base_model
    steps = _steps(profile, kind, len(td.train), settings)
    ckpt = settings.training.checkpoint_steps or profile.checkpoint_steps
    identity = {"kind": kind, "dataset": td.version_id, "base": base_name, "parent": parent.ref if parent else None,
                "profile": profile.identity(), "steps": steps, "checkpoint_steps": ckpt}  # fmt: skip
    rid = checkpoints.run_id(**identity)
    params = {"kind": kind, "dataset_version": td.version_id, "base_model": base_name, "from_model": from_ref,
              "profile": profile.public(), "steps": steps, "checkpoint_steps": ckpt, "run_id": rid,
              "train_rows": len(td.train), "test_rows": len(td.test)}  # fmt: skip
    return TrainingPlan(
        kind=kind,
        profile=profile,
        data=td,
        base_name=base_name,
        parent_ref=parent.ref if parent else None,
        parent_datasets=list(parent.metadata.get("dataset_versions", [])) if parent else [],
        steps=steps,
        checkpoint_steps=ckpt,
        run_id=rid,
        resume=resume,
        params=params,
    )


def _check_parent(parent: Any, td: data.TrainingData) -> None:
    """DPO's --from: the same author's SFT model (a registered kind other than sft is refused; a version
    registered without one is taken as SFT), else InputError before any model loads."""
    if parent.author_slug != td.author_slug:
        raise InputError(
            f"--from {parent.ref} is {parent.author}'s model, but {td.version_id} is {td.author}'s preference data: "
            f"DPO starts from the same author's SFT model ({td.author_slug}/vNNNN)"
        )
    kind = parent.metadata.get("kind")
    if kind is not None and kind != "sft":
        raise InputError(f"--from {parent.ref} is a {kind} model: DPO starts from an SFT model (twin train sft)")


def _check_not_gguf(profile: TrainingProfile) -> None:
    """GGUF weights that ``llm.base_model.resolve_base`` cannot de-quantize (a Hub repository named ...-GGUF, a
    folder of several .gguf files, a .gguf path that is no file) are refused before anything loads, saying what
    to give instead. A local .gguf file (or a folder holding one and no config.json) and the packaged SmolLM2
    GGUF are de-quantized once for the run: Trainer refuses GGUF-quantized weights."""
    from twin_core.errors import ConfigError
    from twin_core.llm.base_model import gguf_problem

    problem = gguf_problem(profile.base_model)
    if problem:
        raise ConfigError(
            f"training profile {profile.source or profile.name}: base_model {profile.base_model.strip()!r} {problem}"
        )
