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
mode. The run chooses the profile (the form's `profile`, or `"profile"` in the triggering event's
extra); `plan_training` resolves its pod profile (`execution_profile`) and every training pod of the
run takes it (mapped `profile` argument), so `gpu-70b` gets the 4-GPU pod. The candidate event carries
each model's pod profile (`{"models": [...], "pod_profiles": {ref: profile}}`): `twin_evaluation`
sizes the evaluation pod from it.

Only authors with a new dataset version are trained (`twin_datasets` emits only those); a `twin train`
that ends with a version already past `candidate` (an unchanged dataset trained before) is not a new
candidate and is left out of the event.

**Trigger form:** `instruct` / `preference` dataset versions (manual runs: `instruct/<author_slug>/vNNNN`,
`preference/<author_slug>/vNNNN`; the form refuses anything else), `profile`, `max_steps` (0 = the
profile's; small values for smoke tests). DPO starts from the SFT model this run trains, so a
`preference` needs the `instruct` of the same author: alone, or for another author, `plan_training`
fails the run (no retry) before any pod starts.
"""

from __future__ import annotations

import os
import re
from datetime import timedelta

from airflow.sdk import Param, dag, task
from twin_ops import dag_kwargs, twin_step_mapped
from twin_ops.assets import CANDIDATE_MODEL, INSTRUCT
from twin_ops.config import execution_mode, training_profiles

DEFAULT_PROFILE = os.environ.get("TWIN_TRAINING_PROFILE") or (
    "gpu-8b" if execution_mode() == "kubernetes" else "cpu-tiny"
)
# A dataset version as the artifact store names it: <kind>/<author_slug>/vNNNN (the slug: group 1).
INSTRUCT_VERSION = r"^(?:instruct/([a-z0-9][a-z0-9-]*)/v\d{4,})?$"
PREFERENCE_VERSION = r"^(?:preference/([a-z0-9][a-z0-9-]*)/v\d{4,})?$"


def form_versions(params: dict) -> dict[str, dict]:
    """The form's datasets as ``{slug: {"instruct": id, "preference": id | None}}`` (empty: none).

    DPO needs ``--from`` an SFT model of the same author (its start and reference), and the only one the
    run has is the SFT of the form's instruct dataset: a preference alone, or another author's, is refused
    (it was silently dropped, or trained on another author's model)."""
    from airflow.sdk.exceptions import AirflowFailException

    instruct, preference = str(params.get("instruct") or ""), str(params.get("preference") or "")
    found = {}
    for name, value, pattern in (
        ("instruct", instruct, INSTRUCT_VERSION),
        ("preference", preference, PREFERENCE_VERSION),
    ):
        match = re.fullmatch(pattern, value)
        if not match:
            raise AirflowFailException(f"{name} {value!r}: expected {name}/<author_slug>/vNNNN")
        found[name] = match.group(1)
    if preference and not instruct:
        raise AirflowFailException(
            f"preference {preference} without instruct: DPO starts from this run's SFT model; "
            "give the author's instruct dataset too"
        )
    if preference and found["preference"] != found["instruct"]:
        raise AirflowFailException(
            f"preference {preference} is {found['preference']}'s, instruct {instruct} is {found['instruct']}'s: "
            "DPO would start from another author's SFT model"
        )
    return {found["instruct"]: {"instruct": instruct, "preference": preference or None}} if instruct else {}


@dag(
    dag_id="twin_training",
    schedule=[INSTRUCT],
    params={
        "instruct": Param(
            "",
            type="string",
            pattern=INSTRUCT_VERSION,
            title="Instruct dataset",
            description="instruct/<author_slug>/vNNNN (manual runs).",
        ),
        "preference": Param(
            "",
            type="string",
            pattern=PREFERENCE_VERSION,
            title="Preference dataset",
            description="preference/<author_slug>/vNNNN, the instruct dataset's author (DPO after its SFT).",
        ),
        "profile": Param(
            DEFAULT_PROFILE,
            type="string",
            examples=training_profiles(),  # proposals: a trainer image may carry profiles of its own
            title="Training profile",
            description="configs/training/<name>.yaml.",
        ),
        "max_steps": Param(0, type="integer", minimum=0, title="Max steps", description="0 = the profile's."),
    },
    **dag_kwargs(
        __doc__,
        tags=["training", "fti-training-pipeline", "gpu"],
        step_timeout=timedelta(hours=8),  # a killed try resumes from its last checkpoint (--resume)
        deadline=timedelta(hours=24),
    ),
)
def twin_training() -> None:
    @task
    def plan_training(params: dict | None = None, **context) -> list[dict]:
        """One run per author with a new dataset version (the triggering Asset events, or the form), with
        the run's training profile and its pod profile."""
        from twin_ops.config import training_pod_profile

        params = params or {}
        manual = form_versions(params)  # bad form input fails here, before any (GPU) pod starts
        versions: dict[str, dict] = {}
        chosen = ""
        for events in (context.get("triggering_asset_events") or {}).values():
            for event in events:
                extra = event.extra or {}
                chosen = extra.get("profile") or chosen
                for slug, ids in (extra.get("versions") or {}).items():
                    versions.setdefault(slug, {}).update({k: v for k, v in ids.items() if v})
        versions.update(manual)
        profile = chosen or params.get("profile") or DEFAULT_PROFILE
        pod_profile = training_pod_profile(profile)
        common = ["--profile", profile, "--resume"]
        if params.get("max_steps"):
            common += ["--max-steps", str(params["max_steps"])]
        print(f"training profile {profile} (pod profile {pod_profile}) for {sorted(versions) or 'no author'}")
        return [
            {"slug": slug, "instruct": ids["instruct"], "preference": ids.get("preference"), "args": common,
             "pod_profile": pod_profile}
            for slug, ids in sorted(versions.items())
            if ids.get("instruct")
        ]  # fmt: skip

    @task
    def plan_sft(runs: list[dict]) -> list[dict]:
        """The mapped kwargs of train_sft: the command and the run's pod profile."""
        return [
            {"arguments": ["train", "sft", "--dataset", run["instruct"], *run["args"]], "profile": run["pod_profile"]}
            for run in runs
        ]

    @task
    def plan_dpo(runs: list[dict], sft_results: list[dict] | None) -> list[dict]:
        """DPO from each author's SFT model, for the authors that have a preference dataset."""
        models = {r["model"].split("/")[0]: r["model"] for r in (sft_results or []) if r and r.get("model")}
        return [
            {"arguments": ["train", "dpo", "--dataset", run["preference"], "--from", models[run["slug"]], *run["args"]],
             "profile": run["pod_profile"]}
            for run in runs
            if run.get("preference") and run["slug"] in models
        ]  # fmt: skip

    @task(outlets=[CANDIDATE_MODEL], trigger_rule="none_failed")
    def check_candidate(runs: list[dict], sft_results: list[dict] | None, dpo_results: list[dict] | None, **context):
        """The last new model of each author (DPO, else SFT) is the candidate; emit the candidate Asset with
        each candidate's pod profile. A result past the candidate stage is a version trained before (same
        dataset, same weights): not a candidate again."""
        from airflow.sdk.exceptions import AirflowSkipException

        pods = {run["slug"]: run["pod_profile"] for run in runs or []}
        latest: dict[str, str] = {}
        for result in [*(sft_results or []), *(dpo_results or [])]:
            if result and result.get("model") and result.get("stage", "candidate") == "candidate":
                latest[result["model"].split("/")[0]] = result["model"]
            elif result and result.get("model"):
                print(f"{result['model']}: already {result['stage']}, not a new candidate")
        if not latest:
            raise AirflowSkipException("no new model was trained (no new dataset version to train on)")
        extra = {"models": sorted(latest.values()), "pod_profiles": {m: pods.get(s, "cpu") for s, m in latest.items()}}
        context["outlet_events"][CANDIDATE_MODEL].extra = extra
        print(f"candidates: {extra['models']}")
        return extra

    runs = plan_training()
    # profile=None: each mapped instance gets the run's pod profile from plan_sft / plan_dpo
    sft = twin_step_mapped("train_sft", profile=None).expand_kwargs(plan_sft(runs))
    dpo = twin_step_mapped("train_dpo", profile=None, trigger_rule="none_failed").expand_kwargs(
        plan_dpo(runs, sft.output)
    )
    check_candidate(runs, sft.output, dpo.output)


twin_training()
