"""
### twin_evaluation — gate a candidate model, roll it out as a canary, promote or roll back

Triggered by `twin://models/candidate` (emitted by `twin_training` with `{"models": ["<slug>/vNNNN"]}`).
Per candidate:

1. `evaluate` — `twin evaluate --model REF --baseline production` on the held-out split of the
   candidate's dataset: perplexity, style similarity, ROUGE-L, judge scores, RAG hit@k/MRR and
   groundedness, candidate and baseline side by side; the report (JSON + HTML) goes to the artifact
   store and Comet. Its pod is sized from the candidate: the pod profile that trained it (the event's
   `pod_profiles`, from `twin_training`), or the form's `pod_profile` for a manual run.
2. `check_gate` — keeps the candidates whose gate passed (thresholds in `configs/evaluation.yaml`); the log
   names every failing metric. No candidate passes: the rest of the run is skipped.
3. `plan_approval` / `approve` — optional human approval (`ApprovalOperator`, Airflow 3.1+ human-in-the-loop), when the
   `approval` param is on; a rejection skips the rollout. Off: `no_approval` passes straight through.
4. `canary` — `twin deploy canary REF`: starts at the first step weight of `configs/deploy.yaml` (or the
   form's `canary_percent`): the registry stage (local serving follows it) and, on Kubernetes, the
   author's InferenceService (`canaryTrafficPercent` in Knative mode, `spec.canary` in Standard mode).
5. `watch` — `twin deploy watch REF --follow`: a progressive canary after Flagger's analysis. Every
   interval one analysis over a sliding window of the inference log (success rate with its interval,
   p95 latency, style distance and groundedness against production): pass -> next step weight, pass at
   the last step -> promote, `threshold` failed analyses -> rollback, too few requests -> hold. Every
   step and decision goes in the registry history with its numbers.
6. `check_promoted` — emits `twin://models/production` with `{"production": [...]}` for the promoted models.

**Trigger form:** `models` (manual: comma-separated refs), `baseline`, `approval`, `canary_percent`,
`watch_window`, `min_requests`, `watch_timeout`, `judge`, `max_rows`, `pod_profile`.
"""

from __future__ import annotations

from datetime import timedelta

from airflow.providers.standard.operators.empty import EmptyOperator
from airflow.providers.standard.operators.hitl import ApprovalOperator
from airflow.sdk import Param, dag, task
from twin_ops import dag_kwargs, twin_step_mapped
from twin_ops.assets import CANDIDATE_MODEL, PRODUCTION_MODEL


@dag(
    dag_id="twin_evaluation",
    schedule=[CANDIDATE_MODEL],
    params={
        "models": Param("", type="string", title="Models", description="Manual runs: <slug>/vNNNN, comma-separated."),
        "baseline": Param("production", type="string", title="Baseline", description="production, base or a ref."),
        "approval": Param(False, type="boolean", title="Human approval", description="Ask before the canary."),
        "canary_percent": Param(
            None,
            type=["null", "integer"],
            minimum=1,
            maximum=99,
            title="First canary traffic %",
            description="Empty: the first step weight of configs/deploy.yaml.",
        ),
        "watch_window": Param(
            "", type="string", title="Analysis window", description="Log read back per analysis; empty: the interval."
        ),
        "min_requests": Param(
            20, type="integer", minimum=1, title="Min canary requests", description="Per analysis; fewer: hold."
        ),
        "watch_timeout": Param(
            "2h", type="string", title="Watch timeout", description="No decision by then: roll back."
        ),
        "judge": Param(True, type="boolean", title="Judge scores", description="LLM judge (endpoint or local)."),
        "max_rows": Param(0, type="integer", minimum=0, title="Held-out rows", description="0 = configs/evaluation."),
        "pod_profile": Param(
            "cpu", type="string", title="Evaluation pod", description="Manual runs: configs/execution.yaml profile."
        ),
    },
    **dag_kwargs(__doc__, tags=["evaluation", "deploy", "fti-inference-pipeline"], deadline=timedelta(hours=6)),
)
def twin_evaluation() -> None:
    @task
    def plan_evaluation(params: dict | None = None, **context) -> list[dict]:
        """One `twin evaluate` per candidate (the triggering Asset events, or the form), in a pod of the
        profile that trained it: the evaluation loads the same model."""
        from twin_ops.config import profile

        params = params or {}
        pods: dict[str, str] = {}
        for events in (context.get("triggering_asset_events") or {}).values():
            for event in events:
                extra = event.extra or {}
                for ref in extra.get("models") or []:
                    pods[ref] = (extra.get("pod_profiles") or {}).get(ref) or params.get("pod_profile") or "cpu"
        for ref in (m.strip() for m in str(params.get("models") or "").split(",")):
            if ref:
                pods[ref] = params.get("pod_profile") or "cpu"
        args = ["--baseline", params.get("baseline") or "production"]
        if not params.get("judge", True):
            args.append("--no-judge")
        if params.get("max_rows"):
            args += ["--max-rows", str(params["max_rows"])]
        for pod in set(pods.values()):
            profile(pod)  # an unknown pod profile fails here, before any pod starts
        return [{"arguments": ["evaluate", "--model", ref, *args], "profile": pods[ref]} for ref in sorted(pods)]

    @task
    def check_gate(results: list[dict] | None) -> list[str]:
        """The candidates that passed the gate (one per author: the newest); failing metrics are logged."""
        from airflow.sdk.exceptions import AirflowSkipException

        passed: dict[str, str] = {}
        for r in results or []:
            if not r:
                continue
            if r.get("passed"):
                passed[r["model"].split("/")[0]] = max(passed.get(r["model"].split("/")[0], ""), r["model"])
                print(f"{r['model']}: gate PASSED vs {r.get('baseline')} (missing: {r.get('missing') or 'none'})")
            else:
                print(f"{r.get('model')}: gate FAILED vs {r.get('baseline')}: {', '.join(r.get('failing') or [])}")
        if not passed:
            raise AirflowSkipException("no candidate passed the evaluation gate: nothing to roll out")
        return sorted(passed.values())

    @task.branch
    def plan_approval(params: dict | None = None) -> str:
        return "approve" if (params or {}).get("approval") else "no_approval"

    approve = ApprovalOperator(
        task_id="approve",
        subject="Roll out the twin candidates {{ ti.xcom_pull(task_ids='check_gate') }} as canaries?",
        body="The evaluation gate passed. Reports: the `evaluate` task results (artifact store, Comet).",
        response_timeout=timedelta(hours=24),
    )
    no_approval = EmptyOperator(task_id="no_approval")

    @task(trigger_rule="none_failed_min_one_success")
    def plan_canary(models: list[str], params: dict | None = None) -> list[list[str]]:
        percent = (params or {}).get("canary_percent")
        weight = ["--percent", str(percent)] if percent else []  # else the first step weight
        return [["deploy", "canary", ref, *weight, "--reason", "passed the evaluation gate"] for ref in models]

    @task
    def plan_watch(canaries: list[dict] | None, params: dict | None = None) -> list[list[str]]:
        params = params or {}
        refs = [c["model"]["ref"] for c in canaries or [] if c and c.get("model")]
        return [
            [
                "deploy", "watch", ref, "--follow",
                *(["--window", str(params["watch_window"])] if params.get("watch_window") else []),
                "--min-requests", str(params.get("min_requests") or 20),
                "--timeout", str(params.get("watch_timeout") or "2h"),
            ]
            for ref in refs
        ]  # fmt: skip

    @task(outlets=[PRODUCTION_MODEL], trigger_rule="none_failed")
    def check_promoted(watched: list[dict] | None, **context) -> dict:
        """Emit the production Asset for the promoted canaries (none promoted: skipped, no event)."""
        from airflow.sdk.exceptions import AirflowSkipException

        promoted = sorted(w["model"] for w in watched or [] if w and w.get("decision") == "promote")
        for w in watched or []:
            if w:
                print(f"{w.get('model')}: {w.get('decision')} ({'; '.join(w.get('reasons') or [])})")
        if not promoted:
            raise AirflowSkipException("no canary was promoted")
        extra = {"production": promoted}
        context["outlet_events"][PRODUCTION_MODEL].extra = extra
        return extra

    # profile=None: each candidate's evaluation pod gets its profile from plan_evaluation
    evaluate = twin_step_mapped("evaluate", profile=None, qdrant=True).expand_kwargs(plan_evaluation())
    passed = check_gate(evaluate.output)
    switch = plan_approval()
    passed >> switch >> [approve, no_approval]
    canary_plan = plan_canary(passed)
    [approve, no_approval] >> canary_plan
    canary = twin_step_mapped("canary", profile="cpu").expand(arguments=canary_plan)
    watch = twin_step_mapped("watch", profile="cpu", execution_timeout=timedelta(hours=5)).expand(
        arguments=plan_watch(canary.output)
    )
    check_promoted(watch.output)


twin_evaluation()
