"""
### twin_training — fine-tune each author's twin: SFT (LoRA/QLoRA), then DPO, on the GPU node pool

Triggered by `twin://datasets/instruct` (emitted by `twin_datasets`). `plan_training` reads the
dataset versions from the triggering event's extra (`{"versions": {slug: {"instruct": id,
"preference": id}}}`) or from the trigger form, and plans one run per author:

1. `train_sft` — `twin train sft --dataset instruct/<slug>/vNNNN --profile P --resume` in a **GPU pod**
   (node pool selector, `nvidia.com/gpu` toleration and limit, memory-backed `/dev/shm`, an ephemeral
   scratch volume for the base model and checkpoints). Checkpoints go to the artifact store every N
   steps; `--resume` makes a retry of a killed (spot) pod continue from the newest one.
2. `train_dpo` — `twin train dpo --dataset preference/<slug>/vNNNN --from <SFT model> --profile P
   --resume` for authors with a preference dataset; the SFT model is the start and the reference.
3. `check_candidate` — each run ended with a **candidate** in the model registry; emits
   `twin://models/candidate` with `{"models": ["<slug>/vNNNN", ...]}`, which triggers evaluation.

Profiles (`configs/training/*.yaml`): `gpu-8b` on the cluster (QLoRA 4-bit, 1 GPU), `gpu-70b`
(FSDP + QLoRA, 4 GPUs in one pod: its `execution_profile` is `gpu-multi`), `cpu-tiny` in local
mode. The pod profile is the training profile's `execution_profile`, read when the DAG is parsed.

**Trigger form:** `instruct` / `preference` dataset versions (manual runs), `profile`, `max_steps`
(0 = the profile's; small values for smoke tests).
"""

from __future__ import annotations

import os
from datetime import timedelta

import yaml
from airflow.sdk import Param, dag, task
from twin_ops import dag_kwargs, twin_step_mapped
from twin_ops.assets import CANDIDATE_MODEL, INSTRUCT
from twin_ops.config import execution_mode, find_config

DEFAULT_PROFILE = os.environ.get("TWIN_TRAINING_PROFILE") or (
    "gpu-8b" if execution_mode() == "kubernetes" else "cpu-tiny"
)


def _execution_profile(training_profile: str) -> str:
    """The pod profile (configs/execution.yaml) a training profile asks for; GPU when unknown."""
    path = find_config(f"training/{training_profile}.yaml", "TWIN_TRAINING_PROFILE_FILE")
    if not path.is_file():
        return "cpu" if training_profile.startswith("cpu") else "gpu"
    with open(path, encoding="utf-8") as fh:
        return str((yaml.safe_load(fh) or {}).get("execution_profile") or "gpu")


POD_PROFILE = _execution_profile(DEFAULT_PROFILE)


@dag(
    dag_id="twin_training",
    schedule=[INSTRUCT],
    params={
        "instruct": Param("", type="string", title="Instruct dataset", description="instruct/<slug>/vNNNN (manual)."),
        "preference": Param("", type="string", title="Preference dataset", description="preference/<slug>/vNNNN."),
        "profile": Param(DEFAULT_PROFILE, type="string", title="Training profile", description="configs/training."),
        "max_steps": Param(0, type="integer", minimum=0, title="Max steps", description="0 = the profile's."),
    },
    **dag_kwargs(__doc__, tags=["training", "fti-training-pipeline", "gpu"], deadline=timedelta(hours=24)),
)
def twin_training() -> None:
    @task
    def plan_training(params: dict | None = None, **context) -> list[dict]:
        """One run per author: dataset versions from the triggering Asset events, or the trigger form."""
        params = params or {}
        versions: dict[str, dict] = {}
        for events in (context.get("triggering_asset_events") or {}).values():
            for event in events:
                for slug, ids in ((event.extra or {}).get("versions") or {}).items():
                    versions.setdefault(slug, {}).update({k: v for k, v in ids.items() if v})
        if params.get("instruct"):
            slug = params["instruct"].split("/")[1]
            versions[slug] = {"instruct": params["instruct"], "preference": params.get("preference") or None}
        common = ["--profile", params.get("profile") or DEFAULT_PROFILE, "--resume"]
        if params.get("max_steps"):
            common += ["--max-steps", str(params["max_steps"])]
        return [
            {"slug": slug, "instruct": ids["instruct"], "preference": ids.get("preference"), "args": common}
            for slug, ids in sorted(versions.items())
            if ids.get("instruct")
        ]

    @task
    def plan_sft(runs: list[dict]) -> list[list[str]]:
        return [["train", "sft", "--dataset", run["instruct"], *run["args"]] for run in runs]

    @task
    def plan_dpo(runs: list[dict], sft_results: list[dict] | None) -> list[list[str]]:
        """DPO from each author's SFT model, for the authors that have a preference dataset."""
        models = {r["model"].split("/")[0]: r["model"] for r in (sft_results or []) if r and r.get("model")}
        return [
            ["train", "dpo", "--dataset", run["preference"], "--from", models[run["slug"]], *run["args"]]
            for run in runs
            if run.get("preference") and run["slug"] in models
        ]

    @task(outlets=[CANDIDATE_MODEL], trigger_rule="none_failed")
    def check_candidate(sft_results: list[dict] | None, dpo_results: list[dict] | None, **context) -> dict:
        """The last model of each author (DPO, else SFT) is the candidate; emit the candidate Asset."""
        from airflow.sdk.exceptions import AirflowSkipException

        latest: dict[str, str] = {}
        for result in [*(sft_results or []), *(dpo_results or [])]:
            if result and result.get("model"):
                latest[result["model"].split("/")[0]] = result["model"]
        if not latest:
            raise AirflowSkipException("no model was trained (no dataset version to train on)")
        extra = {"models": sorted(latest.values())}
        context["outlet_events"][CANDIDATE_MODEL].extra = extra
        print(f"candidates: {extra['models']}")
        return extra

    runs = plan_training()
    sft = twin_step_mapped("train_sft", profile=POD_PROFILE).expand(arguments=plan_sft(runs))
    dpo = twin_step_mapped("train_dpo", profile=POD_PROFILE, trigger_rule="none_failed").expand(
        arguments=plan_dpo(runs, sft.output)
    )
    check_candidate(sft.output, dpo.output)


twin_training()
