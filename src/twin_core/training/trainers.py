"""TRL trainers from a profile: SFTTrainer / DPOTrainer arguments, held-out evaluation, early stopping.

Packed SFT (``packing``, TRL's best-fit-decreasing strategy) is padding-free: whole examples share a
sequence of up to ``max_length`` tokens and position ids restart per example; each example attends only
to itself (``varlen_attention``: one causal SDPA per example) and no padded token is computed. Loss
stays on the completion tokens (``completion_only_loss``). On CPU profiles the LoRA dropout draws its
masks four elements per random word (``lora_dropout``) and the LM head projects only the positions with
a label, once (``completion_head``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from twin_core.errors import ConfigError
from twin_core.training.peft_model import lora_config
from twin_core.training.profiles import StageSpec, TrainingProfile

Kind = Literal["sft", "dpo"]


def stage_of(profile: TrainingProfile, kind: Kind) -> StageSpec:
    return profile.sft if kind == "sft" else profile.dpo


def trainer_args(profile: TrainingProfile, kind: Kind, out: Path, steps: int, ckpt_steps: int, evaluate: bool) -> Any:
    """SFTConfig / DPOConfig; with ``evaluate`` the held-out split is scored every checkpoint and the best
    checkpoint (lowest eval loss) is the one kept at the end."""
    stage = stage_of(profile, kind)
    common: dict[str, Any] = {
        "output_dir": str(out),
        "max_steps": steps,
        "per_device_train_batch_size": stage.batch_size,
        "per_device_eval_batch_size": stage.batch_size,
        "gradient_accumulation_steps": stage.grad_accum,
        "learning_rate": stage.learning_rate,
        "lr_scheduler_type": stage.lr_scheduler,
        "warmup_steps": stage.warmup_ratio,  # < 1: a fraction of the steps
        "weight_decay": stage.weight_decay,
        "logging_steps": 1,
        "save_strategy": "steps",
        "save_steps": ckpt_steps,
        "save_total_limit": 2,  # local scratch; the artifact store keeps the newest TWIN_TRAINING_KEEP_CHECKPOINTS
        "seed": profile.seed,
        "data_seed": profile.seed,
        "bf16": profile.precision == "bf16",
        "fp16": profile.precision == "fp16",
        "activation_checkpointing": profile.gradient_checkpointing,  # transformers 5: gradient_* is a deprecated alias
        "use_cpu": profile.device == "cpu",
        "report_to": "none",  # Comet is driven by tracking.Tracker (offline or online)
        "include_num_input_tokens_seen": "non_padding",
        "disable_tqdm": True,
        "dataloader_num_workers": 0,
        "max_length": profile.max_length,
        "train_sampling_strategy": "group_by_length" if profile.group_by_length else "random",
    }
    if evaluate:  # eval every checkpoint (load_best_model_at_end needs save_steps a multiple of eval_steps)
        # restore_callback_states: a resumed run keeps early stopping's count of evaluations without a lower loss
        common.update(eval_strategy="steps", eval_steps=ckpt_steps, load_best_model_at_end=True,
                      metric_for_best_model="eval_loss", greater_is_better=False,
                      restore_callback_states_from_checkpoint=True)  # fmt: skip
    if kind == "sft":
        from trl import SFTConfig

        # packing_strategy "bfd" = padding-free: examples packed whole (best fit), position ids restart per example
        return SFTConfig(**common, packing=profile.packing, packing_strategy="bfd", completion_only_loss=True)
    from trl import DPOConfig

    return DPOConfig(**common, beta=stage.beta or 0.1)


def build_trainer(
    kind: Kind, profile: TrainingProfile, args: Any, model: Any, tokenizer: Any, datasets: tuple[Any, Any | None],
    callbacks: list[Any],
) -> Any:  # fmt: skip
    """The TRL trainer; ``datasets`` = (train, eval or None). DPO: ``ref_model=None`` + PEFT, so the
    SFT model with the adapter disabled is the reference."""
    train_ds, eval_ds = datasets
    patience = stage_of(profile, kind).early_stopping_patience
    if eval_ds is not None and patience:
        from transformers import EarlyStoppingCallback

        callbacks = [*callbacks, EarlyStoppingCallback(early_stopping_patience=patience)]
    common = {"model": model, "args": args, "train_dataset": train_ds, "eval_dataset": eval_ds,
              "processing_class": tokenizer, "peft_config": lora_config(profile), "callbacks": callbacks}  # fmt: skip
    if kind == "sft":
        from trl import SFTTrainer as trainer_class
    else:
        from trl import DPOTrainer as trainer_class

        common["ref_model"] = None
    from peft.utils.error import NoMatchingPeftModuleError

    try:
        trainer = trainer_class(**common)
    except NoMatchingPeftModuleError:  # was peft's traceback, exit 1, after the model had loaded
        raise ConfigError(_no_target_message(profile, model)) from None
    if profile.device == "cpu":
        _cpu_levers(trainer)
    return trainer


def _no_target_message(profile: TrainingProfile, model: Any) -> str:
    """lora.target_modules that name no module of the model, with the linear modules it has."""
    import torch

    names = sorted({name.rsplit(".", 1)[-1] for name, m in model.named_modules() if isinstance(m, torch.nn.Linear)})
    return (
        f"training profile {profile.source or profile.name}: lora.target_modules {profile.lora.target_modules} "
        f"match no module of the base model ({getattr(model.config, 'model_type', '?')}); its linear modules are "
        f"{', '.join(names)} (or write all-linear)"
    )


def _cpu_levers(trainer: Any) -> None:
    """CPU dropout draws cost a quarter of a step and TRL's tiled LM head (built for GPU memory) projects
    every position twice; GPUs have fused dropout kernels and need the tiles."""
    from twin_core.training.completion_head import use_completion_head
    from twin_core.training.lora_dropout import use_lane_dropout

    use_lane_dropout(trainer.model)
    if not getattr(trainer, "use_weighting", False):  # DPO's WPO weights need a statistic this head skips
        use_completion_head(trainer.model)
