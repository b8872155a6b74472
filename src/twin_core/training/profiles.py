"""Training profiles: ``configs/training/<name>.yaml``, validated, chosen by name."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from twin_core.errors import ConfigError
from twin_core.settings import Settings

_REPO_PROFILES = Path(__file__).resolve().parents[3] / "configs" / "training"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class LoraSpec(_Strict):
    r: int = Field(16, gt=0)
    alpha: int = Field(32, gt=0)
    dropout: float = Field(0.05, ge=0, lt=1)
    target_modules: list[str] | str = "all-linear"
    modules_to_save: list[str] = Field(
        default_factory=list,
        exclude_if=lambda modules: not modules,  # left out when empty: existing profiles keep their run ids
        description="Modules trained in full beside the adapter (PEFT modules_to_save), e.g. the lm_head of a small "
        "model whose output layer must learn too",
    )


class QuantizationSpec(_Strict):
    bits: Literal[4, 8] = 4
    quant_type: Literal["nf4", "fp4"] = "nf4"
    double_quant: bool = True
    compute_dtype: Literal["bfloat16", "float16", "float32"] = "bfloat16"
    quant_storage: Literal["bfloat16", "float16", "float32", "uint8"] | None = None


# transformers' SchedulerType values a profile can name: the ones that run without lr_scheduler_kwargs
# (cosine_with_min_lr and warmup_stable_decay need them) or an eval metric every step (reduce_lr_on_plateau).
# A name outside these was a ValueError from the Trainer after the model had loaded (exit 1).
LrScheduler = Literal[
    "linear", "cosine", "cosine_with_restarts", "polynomial", "constant", "constant_with_warmup", "inverse_sqrt"
]


class StageSpec(_Strict):
    max_steps: int = Field(0, ge=0, description="0 = run the epochs")
    epochs: float = Field(1, gt=0)
    learning_rate: float = Field(2e-4, gt=0)
    batch_size: int = Field(2, gt=0)
    grad_accum: int = Field(1, gt=0)
    warmup_ratio: float = Field(0.0, ge=0, lt=1)
    lr_scheduler: LrScheduler = Field(
        "cosine", description="transformers' schedules that need no lr_scheduler_kwargs (a profile has none)"
    )
    weight_decay: float = Field(0.0, ge=0)
    beta: float | None = Field(None, gt=0, description="DPO only: deviation from the reference model")
    early_stopping_patience: int = Field(
        0, ge=0, description="> 0: eval loss on the held-out split every checkpoint; stop after N without gain"
    )


class AccelerateSpec(_Strict):
    config_file: str
    num_processes: int = Field(..., gt=0)


class TrainingProfile(_Strict):
    name: str
    description: str = ""
    base_model: str
    device: Literal["cpu", "gpu"]
    execution_profile: str = "cpu"
    max_length: int = Field(512, gt=16)
    precision: Literal["fp32", "bf16", "fp16"] = "fp32"
    gradient_checkpointing: bool = False
    packing: bool = Field(False, description="SFT: best-fit packing, padding-free (position ids per example)")
    group_by_length: bool = Field(False, description="batches of similar lengths (less padding)")
    fit_memory: bool = Field(
        False,
        exclude_if=lambda fit: not fit,  # left out when off: existing profiles keep their run ids
        description="One GPU: the stage's batch_size x grad_accum sequences per step are kept; the micro-batch "
        "and the recomputation are chosen from the GPU's free memory (training/memory_fit.py)",
    )
    seed: int = 42
    checkpoint_steps: int = Field(50, gt=0)
    lora: LoraSpec = Field(default_factory=LoraSpec)
    quantization: QuantizationSpec | None = None
    accelerate: AccelerateSpec | None = None
    sft: StageSpec = Field(default_factory=StageSpec)
    dpo: StageSpec = Field(default_factory=lambda: StageSpec(learning_rate=5e-6, beta=0.1))
    source: str = ""

    @model_validator(mode="after")
    def _fit_memory_on_one_gpu(self) -> TrainingProfile:
        if self.fit_memory and (self.device != "gpu" or self.accelerate):
            raise ValueError("fit_memory sizes the micro-batch from one GPU's memory: device gpu, no accelerate")
        return self

    def public(self) -> dict[str, Any]:
        return self.model_dump(mode="json", exclude={"source"})

    def identity(self) -> dict[str, Any]:
        """What goes into a run's id (what ``--resume`` finds): the profile less the fields that do not
        change the trained weights: ``description`` and ``execution_profile`` (the pod it runs on)."""
        return self.model_dump(mode="json", exclude=set(NOT_TRAINING_FIELDS))


NOT_TRAINING_FIELDS = ("source", "description", "execution_profile")


def profiles_dir(settings: Settings) -> Path:
    return settings.training.profiles_dir or _REPO_PROFILES


def available_profiles(settings: Settings) -> list[str]:
    folder = profiles_dir(settings)
    return (
        sorted(p.stem for p in folder.glob("*.yaml") if not p.stem.startswith("accelerate")) if folder.is_dir() else []
    )


def load_profile(settings: Settings, name: str | None = None) -> TrainingProfile:
    """The profile ``name`` (the CLI's --profile; default TWIN_TRAINING_PROFILE); a name can also be a path
    to a YAML file."""
    source = "--profile" if name and name.strip() else "TWIN_TRAINING_PROFILE"  # the error names where it came from
    name = (name or "").strip() or settings.training.profile.strip()
    path = Path(name) if name.endswith((".yaml", ".yml")) else profiles_dir(settings) / f"{name}.yaml"
    if not path.is_file():
        known = ", ".join(available_profiles(settings)) or "none found"
        raise ConfigError(f"{source}: unknown training profile {name!r} (known: {known}; {path} missing)")
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"training profile {path}: not valid YAML: {' '.join(str(exc).split())}") from None
    if not isinstance(raw, dict):
        raise ConfigError(f"training profile {path}: expected a mapping of settings (name: ..., base_model: ...), "
                          f"got a {type(raw).__name__}")  # fmt: skip
    try:
        profile = TrainingProfile.model_validate({**raw, "source": str(path)})
    except ValidationError as exc:
        raise ConfigError(f"training profile {path}: {_validation_message(exc)}") from None
    if profile.accelerate and not Path(profile.accelerate.config_file).is_absolute():
        profile.accelerate.config_file = str(path.parent / profile.accelerate.config_file)
    return profile


def _validation_message(exc: ValidationError) -> str:
    """One line per problem: ``sft.max_steps: Input should be greater than or equal to 0 (got -1)``."""
    problems = []
    for err in exc.errors(include_url=False):
        where = ".".join(str(part) for part in err["loc"]) or "profile"
        got = f" (got {repr(err['input'])[:80]})" if err["type"] not in ("missing", "value_error") else ""
        problems.append(f"{where}: {err['msg']}{got}")
    return f"{len(problems)} invalid setting{'s' if len(problems) != 1 else ''}: " + "; ".join(problems)
