"""``run_training``: SFT (LoRA/QLoRA) or DPO on a dataset version, ending with a registered candidate.

Three phases, each testable on its own:

1. ``plan_training`` (``plan.py``; pure: reads the profile, the dataset rows and, for DPO, the parent
   version; writes nothing, loads no model): the run id, steps, checkpoint interval, parameters;
2. ``execute`` (the trainer): GPU check, base model, held-out perplexity before, TRL training with
   checkpoints mirrored to the artifact store (``--resume`` continues from the newest), Comet and a
   progress bar each step, held-out perplexity after;
3. ``record`` (``record.py``): adapter + merged weights + tokenizer + Comet archive written and registered (metadata
   last: a version appears only complete), and the step result.

The run folder ``TWIN_HOME/training/<run_id>`` is scratch; the artifact store holds what matters.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import shutil
import time
import warnings
from pathlib import Path
from typing import Any

from twin_core.errors import TwinError
from twin_core.llm import rows
from twin_core.llm.base_model import resolve_base
from twin_core.llm.perplexity import perplexity
from twin_core.progress import ProgressFactory, silent
from twin_core.settings import Settings
from twin_core.training import checkpoints, lengths, memory_fit
from twin_core.training import peft_model as models
from twin_core.training.plan import Resume, TrainingPlan, plan_training
from twin_core.training.record import Outcome, record
from twin_core.training.step_clock import step_clock
from twin_core.training.trainers import Kind, build_trainer, trainer_args

log = logging.getLogger(__name__)

EVAL_EXAMPLES = 64  # held-out examples scored for perplexity (the test split is small anyway)


def run_training(
    settings: Settings,
    kind: Kind,
    dataset_version: str,
    *,
    profile_name: str | None = None,
    from_ref: str | None = None,
    resume: Resume = False,
    progress: ProgressFactory = silent,
) -> dict[str, Any]:
    """Plan, train, register a candidate, and return the step result (see the module doc)."""
    from twin_core.llm.comet import quiet_comet

    quiet_comet()  # before transformers imports comet_ml (its integrations probe for it)
    plan = plan_training(settings, kind, dataset_version, profile_name=profile_name, from_ref=from_ref, resume=resume)
    outcome = execute(settings, plan, progress)
    if not outcome.trainer.is_world_process_zero():  # FSDP ranks > 0: rank 0 saves and registers
        return {"rank": int(os.environ.get("RANK", "0")), "steps": outcome.metrics["global_step"]}
    return record(settings, plan, outcome)


# -- run ---------------------------------------------------------------------------------------------


def _base_location(settings: Settings, plan: TrainingPlan) -> str:
    if plan.parent_ref:
        from twin_core.stores.registry import open_registry

        return str(open_registry(settings).local_weights(plan.parent_ref))
    return resolve_base(settings, plan.profile.base_model)


def _heldout(tokenizer: Any, plan: TrainingPlan) -> list[tuple[str, str]]:
    """(prompt as trained, author's answer) pairs of the test split, for perplexity."""
    answer = "completion" if plan.kind == "sft" else "chosen"
    held = lengths.examples(plan, tokenizer, plan.data.test[:EVAL_EXAMPLES])
    return [rows.prompt_and_answer_text(tokenizer, example, answer) for example in held]


def _datasets(plan: TrainingPlan, tokenizer: Any, train_examples: list[dict[str, Any]]) -> tuple[Any, Any | None]:
    """The Trainer's datasets: the training examples as rendered for the length check, the test split's."""
    from datasets import Dataset

    train = Dataset.from_list(train_examples)
    test = Dataset.from_list(lengths.examples(plan, tokenizer, plan.data.test)) if plan.evaluate else None
    return train, test


def _trainer(
    settings: Settings,
    plan: TrainingPlan,
    model: Any,
    tokenizer: Any,
    work: Path,
    progress: Any,
    train_examples: list[dict[str, Any]],
) -> tuple[Any, Any]:
    """(TRL trainer, Comet tracker) with the checkpoint, Comet and progress-bar callbacks."""
    from transformers import set_seed

    from twin_core.stores.artifacts import open_artifact_store
    from twin_core.training.progress_bar import progress_callback, quiet_trainer

    td, kind = plan.data, plan.kind
    tracker = _tracker(settings, plan, work / "comet", f"{kind}-{td.author_slug}-{plan.run_id}",
                       [kind, td.author_slug, plan.profile.name])  # fmt: skip
    labels = {"kind": kind, "dataset": td.version_id}  # what a --resume that finds no checkpoint names
    saves = checkpoints.make_callback(open_artifact_store(settings), plan.run_id, labels,
                                      keep=settings.training.keep_checkpoints)  # fmt: skip
    callbacks = [saves, tracker.callback(), progress_callback(progress, f"train {kind} {td.author_slug}")]
    if settings.training.torch_profile:  # where a step's time goes (slows the steps it records)
        from twin_core.training.torch_profile import profile_callback

        callbacks.append(profile_callback(settings.training.torch_profile / f"{kind}-{plan.run_id}"))
    args = trainer_args(plan.profile, kind, work / "trainer", plan.steps, plan.checkpoint_steps, plan.evaluate)
    set_seed(plan.profile.seed)  # the LoRA init too: a run is reproducible step for step
    datasets = _datasets(plan, tokenizer, train_examples)
    trainer = build_trainer(kind, plan.profile, args, model, tokenizer, datasets, callbacks)
    quiet_trainer(trainer)
    return trainer, tracker


def _fit_memory(plan: TrainingPlan, model: Any) -> tuple[TrainingPlan, memory_fit.Fit | None]:
    """The plan with the micro-batch and recomputation fitted to the GPU (``fit_memory`` profiles); the
    run id stays the profile's: the same sequences make each step."""
    if not plan.profile.fit_memory:
        return plan, None
    profile, fit = memory_fit.fit_profile(plan.profile, plan.kind, model.config, memory_fit.gpu_budget())
    return dataclasses.replace(plan, profile=profile), fit


def _resume_point(settings: Settings, plan: TrainingPlan, work: Path) -> tuple[tuple[Path, int] | None, int]:
    """(checkpoint folder and step, tokens seen before it) when resuming, else (None, 0)."""
    if not plan.resume:
        return None, 0
    import json

    from twin_core.stores.artifacts import open_artifact_store

    store = open_artifact_store(settings)
    found = checkpoints.latest_checkpoint(store, plan.run_id, work / "trainer")
    if not found:
        _warn_no_checkpoint(store, plan)
        return None, 0
    log.info("resuming run %s from step %d", plan.run_id, found[1])
    state = json.loads((found[0] / "trainer_state.json").read_text())
    return found, int(state.get("num_input_tokens_seen") or 0)


def _warn_no_checkpoint(store: Any, plan: TrainingPlan) -> None:
    """--resume with no checkpoint for this run id: a WARNING (training starts over), naming the runs of
    the same kind and dataset that do have checkpoints (another profile, step cap or base); with resume
    "if-any" a first run, said at INFO."""
    others = checkpoints.runs_with_checkpoints(store, kind=plan.kind, dataset=plan.data.version_id)
    others = [(rid, step) for rid, step in others if rid != plan.run_id]
    hint = (
        "; runs of this dataset with checkpoints: "
        + ", ".join(f"{rid} (step {step})" for rid, step in others)
        + " (another profile, --max-steps, checkpoint interval or --from)"
        if others
        else ""
    )
    if plan.resume == "if-any":
        log.info("no checkpoint of run %s (%s %s) yet: training starts from step 0%s",
                 plan.run_id, plan.kind, plan.data.version_id, hint)  # fmt: skip
        return
    log.warning("--resume: no checkpoint for run %s (%s %s): training starts from step 0%s",
                plan.run_id, plan.kind, plan.data.version_id, hint)  # fmt: skip


def _train(trainer: Any, resume_from: tuple[Path, int] | None, plan: TrainingPlan, fit: memory_fit.Fit | None
           ) -> tuple[float | None, bool]:  # fmt: skip
    """Train (or take a finished run's last checkpoint as is); the mean training loss and whether it covers
    every step (see ``_train_or_take``). Running out of GPU memory is a TwinError that says which split ran
    out and what to change."""
    import torch

    try:
        return _train_or_take(trainer, resume_from, plan.steps)
    except torch.OutOfMemoryError as exc:
        advice = memory_fit.out_of_memory_advice(plan.profile, plan.kind, fit)
        raise TwinError(f"the GPU ran out of memory training {advice}. torch: {str(exc).splitlines()[0]}") from exc


def _train_or_take(trainer: Any, resume_from: tuple[Path, int] | None, steps: int) -> tuple[float | None, bool]:
    """(mean training loss, whether it covers every step). Trainer's own mean covers only the steps this
    process trained: after a resume the mean of the logged losses (the checkpoint's log history has the
    earlier steps, one loss per step) is taken instead, and when that history is incomplete the loss is
    Trainer's, flagged as covering the steps since the resume only."""
    if resume_from and _finished(resume_from[0], resume_from[1], steps):
        # killed while saving or registering: Trainer.train would run one step past max_steps here, or
        # past early stopping's stop until its next evaluation
        _load_finished(trainer, resume_from[0])
        return _logged_mean(trainer.state.log_history), True
    output = trainer.train(resume_from_checkpoint=str(resume_from[0]) if resume_from else None)
    if not resume_from:
        return float(output.training_loss), True
    logged = {int(h["step"]) for h in trainer.state.log_history if "loss" in h and "step" in h}
    if logged >= set(range(1, int(trainer.state.global_step) + 1)):
        return _logged_mean(trainer.state.log_history), True
    return float(output.training_loss), False


def _finished(checkpoint: Path, step: int, steps: int) -> bool:
    """Whether training had ended at this checkpoint: its last step, or early stopping had stopped it."""
    import json

    state_file = checkpoint / "trainer_state.json"
    if step >= steps or not state_file.is_file():
        return step >= steps
    control = (json.loads(state_file.read_text()).get("stateful_callbacks") or {}).get("TrainerControl") or {}
    return bool((control.get("args") or {}).get("should_training_stop"))


def _logged_mean(log_history: list[dict[str, Any]]) -> float | None:
    losses = [float(h["loss"]) for h in log_history if "loss" in h]
    return sum(losses) / len(losses) if losses else None  # what Trainer reports: the mean


def execute(settings: Settings, plan: TrainingPlan, progress: ProgressFactory = silent) -> Outcome:
    """The run: base model, perplexity before, training, perplexity after."""
    models.check_device(plan.profile)
    # TRL and peft read transformers' deprecated `is_gradient_checkpointing`: a FutureWarning per run that no
    # setting of ours can avoid
    warnings.filterwarnings("ignore", message="`is_gradient_checkpointing` is deprecated", category=FutureWarning)
    if settings.llm.threads:
        import torch

        torch.set_num_threads(settings.llm.threads)
    base_location = _base_location(settings, plan)
    tokenizer = models.load_tokenizer(settings, base_location)
    train_examples = lengths.check_answers_fit(tokenizer, plan)  # none fitting max_length: before the model loads
    work = settings.home / "training" / plan.run_id
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    resume_from, tokens_before = _resume_point(settings, plan, work)
    model, tokenizer = models.load_for_training(settings, plan.profile, base_location, tokenizer)
    plan, fit = _fit_memory(plan, model)
    heldout = _heldout(tokenizer, plan)
    max_len = plan.profile.max_length
    ppl_base = perplexity(model, tokenizer, heldout, max_length=max_len) if heldout else None
    trainer, tracker = _trainer(settings, plan, model, tokenizer, work, progress, train_examples)
    clock = step_clock()
    trainer.add_callback(clock)
    started = time.perf_counter()
    train_loss = _train(trainer, resume_from, plan, fit)  # (loss, covers every step)
    seconds = time.perf_counter() - started
    tokens = int(trainer.state.num_input_tokens_seen or 0) - tokens_before
    ppl_trained = perplexity(trainer.model, tokenizer, heldout, max_length=max_len) if heldout else None
    curve = _loss_curve(trainer.state.log_history)
    throughput = tokens / seconds if tokens else None  # a finished run taken as is trained nothing here
    metrics = _metrics(trainer, plan.kind, curve, train_loss, (ppl_base, ppl_trained), throughput)
    metrics.update(clock.summary())
    if plan.profile.device == "gpu":  # the fitted plan (fit_memory is GPU-only), its estimate, the measured peak
        metrics.update({**(fit.metrics() if fit else {}), "peak_memory_gib": memory_fit.peak_gib()})
    tracker.log_metrics({f"final/{k}": v for k, v in metrics.items() if v is not None}, metrics["global_step"])
    return Outcome(trainer, tokenizer, base_location, metrics, curve, seconds,
                   resume_from[1] if resume_from else None, tracker)  # fmt: skip


def _loss_curve(log_history: list[dict[str, Any]]) -> list[tuple[int, float]]:
    return [(int(h["step"]), float(h["loss"])) for h in log_history if "loss" in h and "step" in h]


def _metrics(
    trainer: Any, kind: Kind, curve: list[tuple[int, float]], train_loss: tuple[float | None, bool],
    ppl: tuple[float | None, float | None], tokens_per_s: float | None,
) -> dict[str, Any]:  # fmt: skip
    """The run's numbers; ``train_loss`` is the mean over every step, ``train_loss_since_resume`` instead
    when a resumed run's history lacks the earlier steps' losses."""
    state = trainer.state
    loss, every_step = train_loss
    metrics: dict[str, Any] = {
        "train_loss" if every_step else "train_loss_since_resume": round(loss, 4) if loss is not None else None,
        "first_loss": curve[0][1] if curve else None,
        "last_loss": curve[-1][1] if curve else None,
        "perplexity_base": round(ppl[0], 3) if ppl[0] else None,
        "perplexity_trained": round(ppl[1], 3) if ppl[1] else None,
        "global_step": int(state.global_step),
        "tokens_per_s": round(tokens_per_s, 1) if tokens_per_s is not None else None,
    }
    if state.best_metric is not None:  # early stopping on the held-out split
        metrics["best_eval_loss"] = round(float(state.best_metric), 4)
        # the step whose weights were kept: none when its checkpoint was lost (the last step's weights are)
        metrics["best_step"] = int(state.best_global_step) if state.best_model_checkpoint else None
    if kind == "dpo":
        last = next((h for h in reversed(state.log_history) if "rewards/margins" in h), {})
        metrics.update({k.replace("/", "_"): round(float(v), 4) for k, v in last.items() if k.startswith("rewards/")})
    return metrics


def _load_finished(trainer: Any, checkpoint: Path) -> None:
    """Trainer state of a checkpoint at the last step and the weights training ends on (early stopping's
    best checkpoint, else this one's), without training."""
    from peft import set_peft_model_state_dict
    from safetensors.torch import load_file
    from transformers import TrainerState

    trainer.state = TrainerState.load_from_json(str(checkpoint / "trainer_state.json"))
    if trainer.args.load_best_model_at_end and trainer.state.best_model_checkpoint:
        checkpoint = Path(trainer.state.best_model_checkpoint)  # what Trainer loads at the end of training
    set_peft_model_state_dict(trainer.model, load_file(str(checkpoint / "adapter_model.safetensors")))


def _tracker(settings: Settings, plan: TrainingPlan, folder: Path, name: str, tags: list[str]) -> Any:
    from twin_core.training.tracking import Tracker

    # system metrics on a GPU only: on a CPU their sampling thread slows every step (tracking.py)
    return Tracker(settings, folder, name, plan.params, tags, sample_system=plan.profile.device != "cpu")
