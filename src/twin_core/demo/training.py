"""`twin demo` stage: a few steps of SFT (LoRA, cpu-tiny), then DPO from it, on the datasets just built.

The real pipeline (``run_training``) with the step count capped: the loss goes down a little, the
held-out perplexity of base and trained model is printed, and each run ends as a registered
candidate with its Comet offline archive. A demo run again resumes each run from its checkpoints
(``resume="if-any"``; a finished one is taken as is: nothing is trained twice, nothing registered
twice). A full cpu-tiny run is ``twin train sft --dataset ...``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

PROFILE = "cpu-tiny"
SFT_STEPS = 6
DPO_STEPS = 2


def stage(sample: Path) -> dict[str, Any]:
    from twin_core.errors import InputError
    from twin_core.progress import progress
    from twin_core.settings import get_settings, updated
    from twin_core.training.data import dataset_versions
    from twin_core.training.run import run_training

    settings = get_settings()
    instruct = dataset_versions(settings, "instruct")
    if not instruct:
        raise InputError("no instruct dataset version to train on: run the datasets stage (twin datasets build)")
    preference = {v.split("/")[1]: v for v in dataset_versions(settings, "preference")}
    runs: list[dict[str, Any]] = []
    for version in instruct:
        slug = version.split("/")[1]
        sft_settings = updated(settings, training_max_steps=SFT_STEPS, training_checkpoint_steps=SFT_STEPS // 2)
        sft = run_training(sft_settings, "sft", version, profile_name=PROFILE, resume="if-any", progress=progress)
        run = {"sft": _summary(sft)}
        if slug in preference:
            dpo_settings = updated(settings, training_max_steps=DPO_STEPS, training_checkpoint_steps=DPO_STEPS)
            dpo = run_training(
                dpo_settings, "dpo", preference[slug], profile_name=PROFILE, from_ref=sft["model"],
                resume="if-any", progress=progress,
            )  # fmt: skip
            run["dpo"] = _summary(dpo)
        runs.append(run)
    return {"runs": runs, "candidates": [r.get("dpo", r["sft"])["model"] for r in runs]}


def _summary(result: dict[str, Any]) -> dict[str, Any]:
    m = result["metrics"]
    return {
        "model": result["model"],
        "dataset": result["dataset"],
        "steps": result["steps"],
        "loss": [m["first_loss"], m["last_loss"]],
        "perplexity": {"base": m["perplexity_base"], "trained": m["perplexity_trained"]},
        "tokens_per_s": m["tokens_per_s"],
        "comet_archive": result["comet_archive"],
    }
