"""``run_training``: SFT (LoRA/QLoRA) or DPO on a dataset version, ending with a registered candidate.

1. profile (GPU profile without a GPU -> ConfigError), dataset rows (empty/unknown -> InputError),
   base model (packaged SmolLM2 converted once; for DPO the SFT model version from the registry);
2. held-out perplexity of the base on the test split;
3. train with trl, checkpointing to the artifact store every N steps (``--resume`` continues from the
   newest checkpoint: same data order, the step counter goes on), Comet logging each step;
4. held-out perplexity of the trained model; adapter and merged weights + tokenizer + Comet archive
   written to a folder and registered (metadata last: a version appears only complete).

The run folder ``TWIN_HOME/training/<run_id>`` is scratch; the artifact store holds what matters.
"""

from __future__ import annotations

import logging
import math
import os
import shutil
import time
from pathlib import Path
from typing import Any, Literal

from twin_core.domain import content_hash
from twin_core.errors import InputError
from twin_core.llm import rows
from twin_core.llm.base_model import resolve_base
from twin_core.llm.perplexity import perplexity
from twin_core.settings import Settings
from twin_core.training import checkpoints, data
from twin_core.training import peft_model as models
from twin_core.training.profiles import TrainingProfile, load_profile

log = logging.getLogger(__name__)

Kind = Literal["sft", "dpo"]
EVAL_EXAMPLES = 64  # held-out examples scored for perplexity (the test split is small anyway)


def _steps(profile: TrainingProfile, kind: Kind, n_rows: int, settings: Settings) -> int:
    stage = profile.sft if kind == "sft" else profile.dpo
    per_step = stage.batch_size * stage.grad_accum
    epoch_steps = max(1, math.ceil(n_rows / per_step))
    steps = stage.max_steps or max(1, math.ceil(epoch_steps * stage.epochs))
    if settings.training.max_steps:
        steps = min(steps, settings.training.max_steps)
    return steps


def _trainer_args(profile: TrainingProfile, kind: Kind, out: Path, steps: int, ckpt_steps: int) -> Any:
    stage = profile.sft if kind == "sft" else profile.dpo
    common: dict[str, Any] = {
        "output_dir": str(out),
        "max_steps": steps,
        "per_device_train_batch_size": stage.batch_size,
        "gradient_accumulation_steps": stage.grad_accum,
        "learning_rate": stage.learning_rate,
        "lr_scheduler_type": stage.lr_scheduler,
        "warmup_steps": stage.warmup_ratio,  # < 1: a fraction of the steps
        "weight_decay": stage.weight_decay,
        "logging_steps": 1,
        "save_strategy": "steps",
        "save_steps": ckpt_steps,
        "save_total_limit": 2,  # local scratch; every checkpoint is in the artifact store
        "seed": profile.seed,
        "data_seed": profile.seed,
        "bf16": profile.precision == "bf16",
        "fp16": profile.precision == "fp16",
        "gradient_checkpointing": profile.gradient_checkpointing,
        "use_cpu": profile.device == "cpu",
        "report_to": "none",  # Comet is driven by tracking.Tracker (offline or online)
        "include_num_input_tokens_seen": "non_padding",
        "disable_tqdm": True,
        "dataloader_num_workers": 0,
        "max_length": profile.max_length,
    }
    if kind == "sft":
        from trl import SFTConfig

        return SFTConfig(**common, packing=profile.packing, completion_only_loss=True)
    from trl import DPOConfig

    return DPOConfig(**common, beta=stage.beta or 0.1)


def _heldout(tokenizer: Any, kind: Kind, rows: list[dict[str, Any]], author: str) -> list[tuple[str, str]]:
    pairs = []
    for row in rows[:EVAL_EXAMPLES]:
        ex = rows.sft_example(row, author) if kind == "sft" else rows.dpo_example(row, author)
        pairs.append(rows.prompt_and_answer_text(tokenizer, ex, "completion" if kind == "sft" else "chosen"))
    return pairs


def _loss_curve(log_history: list[dict[str, Any]]) -> list[tuple[int, float]]:
    return [(int(h["step"]), float(h["loss"])) for h in log_history if "loss" in h and "step" in h]


def run_training(
    settings: Settings,
    kind: Kind,
    dataset_version: str,
    *,
    profile_name: str | None = None,
    from_ref: str | None = None,
    resume: bool = False,
) -> dict[str, Any]:
    """Train, register a candidate, and return the step result (see the module doc)."""
    from twin_core.llm.comet import quiet_comet

    quiet_comet()  # before transformers imports comet_ml (its integrations probe for it)
    from twin_core.stores.artifacts import open_artifact_store
    from twin_core.stores.registry import open_registry

    profile = load_profile(settings, profile_name)
    models.check_device(profile)
    expected = "instruct" if kind == "sft" else "preference"
    td = data.load_training_data(settings, dataset_version, expected)
    registry = open_registry(settings)
    store = open_artifact_store(settings)
    if kind == "dpo":
        if not from_ref:
            raise InputError("twin train dpo needs --from MODEL_VERSION (the SFT model, also the DPO reference)")
        parent = registry.get(from_ref)  # unknown -> InputError
        base_location = str(registry.local_weights(parent.ref))
        base_name = parent.metadata.get("base_model", parent.ref)
    else:
        parent = None
        base_location = resolve_base(settings, profile.base_model)
        base_name = profile.base_model
    if settings.llm.threads:
        import torch

        torch.set_num_threads(settings.llm.threads)

    steps = _steps(profile, kind, len(td.train), settings)
    ckpt_steps = settings.training.checkpoint_steps or profile.checkpoint_steps
    rid = checkpoints.run_id(
        kind=kind,
        dataset=td.version_id,
        base=base_name,
        parent=parent.ref if parent else None,
        profile=profile.public(),
        steps=steps,
        checkpoint_steps=ckpt_steps,
    )
    work = settings.home / "training" / rid
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    resume_from = checkpoints.latest_checkpoint(store, rid, work / "trainer") if resume else None

    model, tokenizer = models.load_for_training(settings, profile, base_location)
    heldout = _heldout(tokenizer, kind, td.test, td.author)
    ppl_base = perplexity(model, tokenizer, heldout, max_length=profile.max_length) if heldout else None

    from datasets import Dataset

    make = rows.sft_example if kind == "sft" else rows.dpo_example
    train_ds = Dataset.from_list([make(row, td.author) for row in td.train])
    args = _trainer_args(profile, kind, work / "trainer", steps, ckpt_steps)
    params = {
        "kind": kind,
        "dataset_version": td.version_id,
        "base_model": base_name,
        "from_model": from_ref,
        "profile": profile.public(),
        "steps": steps,
        "checkpoint_steps": ckpt_steps,
        "run_id": rid,
        "train_rows": len(td.train),
        "test_rows": len(td.test),
    }
    tracker = _tracker(
        settings, work / "comet", f"{kind}-{td.author_slug}-{rid}", params, [kind, td.author_slug, profile.name]
    )
    callbacks = [checkpoints.make_callback(store, rid), tracker.callback()]
    from transformers import set_seed

    set_seed(profile.seed)  # the LoRA init too: a run is reproducible step for step
    if kind == "sft":
        from trl import SFTTrainer

        trainer = SFTTrainer(
            model=model,
            args=args,
            train_dataset=train_ds,
            processing_class=tokenizer,
            peft_config=models.lora_config(profile),
            callbacks=callbacks,
        )
    else:
        from trl import DPOTrainer

        trainer = DPOTrainer(
            model=model,
            ref_model=None,
            args=args,
            train_dataset=train_ds,
            processing_class=tokenizer,
            peft_config=models.lora_config(profile),
            callbacks=callbacks,
        )
    started = time.perf_counter()
    tokens_before = 0
    if resume_from:
        import json

        state = json.loads((resume_from[0] / "trainer_state.json").read_text())
        tokens_before = int(state.get("num_input_tokens_seen") or 0)
        log.info("resuming run %s from step %d", rid, resume_from[1])
    if resume_from and resume_from[1] >= steps:
        # the run had finished (killed while saving or registering): take its last checkpoint as is;
        # Trainer.train would run one step past max_steps here
        _load_finished(trainer, resume_from[0])
        losses = [h["loss"] for h in trainer.state.log_history if "loss" in h]
        train_loss = sum(losses) / len(losses) if losses else None  # what Trainer reports: the mean
    else:
        output = trainer.train(resume_from_checkpoint=str(resume_from[0]) if resume_from else None)
        train_loss = float(output.training_loss)
    seconds = time.perf_counter() - started
    tokens = int(trainer.state.num_input_tokens_seen or 0) - tokens_before
    curve = _loss_curve(trainer.state.log_history)
    trained = trainer.model
    ppl_trained = perplexity(trained, tokenizer, heldout, max_length=profile.max_length) if heldout else None

    metrics: dict[str, Any] = {
        "train_loss": round(train_loss, 4) if train_loss is not None else None,
        "first_loss": curve[0][1] if curve else None,
        "last_loss": curve[-1][1] if curve else None,
        "perplexity_base": round(ppl_base, 3) if ppl_base else None,
        "perplexity_trained": round(ppl_trained, 3) if ppl_trained else None,
        "global_step": int(trainer.state.global_step),
        "tokens_per_s": round(tokens / seconds, 1) if seconds > 0 else None,
    }
    if kind == "dpo":
        last = next((h for h in reversed(trainer.state.log_history) if "rewards/margins" in h), {})
        metrics.update({k.replace("/", "_"): round(float(v), 4) for k, v in last.items() if k.startswith("rewards/")})
    tracker.log_metrics({f"final/{k}": v for k, v in metrics.items() if v is not None}, int(trainer.state.global_step))

    if not trainer.is_world_process_zero():  # FSDP ranks > 0: rank 0 saves and registers
        return {"rank": int(os.environ.get("RANK", "0")), "steps": metrics["global_step"]}
    out = work / "model"
    models.save_model_folder(trained, tokenizer, out, profile, base_location, settings)
    archive = tracker.end(out / "comet")
    metadata = {
        "kind": kind,
        "base_model": base_name,
        "parent": parent.ref if parent else None,
        "dataset_versions": [td.version_id] + (parent.metadata.get("dataset_versions", []) if parent else []),
        "profile": profile.name,
        "config": params,
        "metrics": metrics,
        "loss_curve": curve,
        "comet_experiment_key": tracker.key,
        "comet_online": tracker.online,
        "comet_archive": f"comet/{archive.name}" if archive else None,
        "run_id": rid,
        "resumed_from_step": resume_from[1] if resume_from else None,
        "prompt_version": _prompt_version(),
    }
    # identity = the weights (not the Comet archive): a retried run that ends with the same model
    # returns the version already registered
    metadata["content_hash"] = content_hash({p.relative_to(out).as_posix(): _file_hash(p) for p in _weight_files(out)})
    mv = registry.register(td.author, out, metadata)
    shutil.rmtree(work, ignore_errors=True)
    return {
        "model": mv.ref,
        "version": mv.version,
        "author": td.author,
        "stage": mv.stage,
        "storage_uri": mv.storage_uri,
        "dataset": td.version_id,
        "profile": profile.name,
        "run_id": rid,
        "resumed_from_step": metadata["resumed_from_step"],
        "steps": metrics["global_step"],
        "train_rows": len(td.train),
        "test_rows": len(td.test),
        "metrics": metrics,
        "comet_experiment_key": mv.metadata.get("comet_experiment_key"),  # the registered run's (a retry
        "comet_archive": mv.metadata.get("comet_archive"),  # that ends with the same weights keeps it)
        "seconds": round(seconds, 1),
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


def _load_finished(trainer: Any, checkpoint: Path) -> None:
    """Adapter weights and trainer state of a checkpoint at the last step, without training."""
    from peft import set_peft_model_state_dict
    from safetensors.torch import load_file
    from transformers import TrainerState

    set_peft_model_state_dict(trainer.model, load_file(str(checkpoint / "adapter_model.safetensors")))
    trainer.state = TrainerState.load_from_json(str(checkpoint / "trainer_state.json"))


def _tracker(settings: Settings, folder: Path, name: str, params: dict[str, Any], tags: list[str]) -> Any:
    from twin_core.training.tracking import Tracker

    return Tracker(settings, folder, name, params, tags)


def _prompt_version() -> str:
    from twin_core.llm.prompt import PROMPT_VERSION

    return PROMPT_VERSION
