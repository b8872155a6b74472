"""
### twin_evaluation — gate a candidate model, roll it out as a canary, promote or roll back

Triggered by `twin://models/candidate` (emitted by `twin_training` with `{"models": ["<slug>/vNNNN"]}`).
Per candidate:

1. `evaluate` — `twin evaluate --model REF --baseline production` on the held-out split of the
   candidate's dataset: perplexity, style similarity, ROUGE-L, judge scores, RAG hit@k/MRR and
   groundedness, candidate and baseline side by side; the report (JSON + HTML) goes to the artifact
   store and Comet. A judge that cannot be reached fails the task as retryable (exit 4: retried, nothing
   stored, no gate decision). Its pod is sized from the candidate: the pod profile that trained it (the event's
   `pod_profiles`, from `twin_training`), or the form's `pod_profile` for a manual run.
2. `check_gate` — keeps the candidates whose gate passed (thresholds in `configs/evaluation.yaml`); the log
   names every failing metric. No candidate passes: the rest of the run is skipped.
3. `plan_approval` / `approve` — optional human approval (`ApprovalOperator`, Airflow 3.1+ human-in-the-loop), when the
   `approval` param is on; a rejection skips the rollout, and so does no answer within 24 h (the `Reject`
   default; the approver is asked once: no retries). Off: `no_approval` passes straight through.
4. `canary` — `twin deploy canary REF`: starts at the first step weight of `configs/deploy.yaml` (or the
   form's `canary_percent`): the registry stage (local serving follows it) and, on Kubernetes, the
   author's InferenceService (`canaryTrafficPercent` in Knative mode, `spec.canary` in Standard mode).
5. `watch` — `twin deploy watch REF --follow`: a progressive canary after Flagger's analysis. Every
   interval one analysis over a sliding window of the inference log (success rate with its interval,
   p95 latency, style distance and groundedness against production): pass -> next step weight, pass at
   the last step -> promote, `threshold` failed analyses -> rollback, too few requests -> hold. Every
   step and decision goes in the registry history with its numbers.
6. `check_promoted` — emits `twin://models/production` with `{"production": [...]}` for the promoted models.

**Trigger form:** `models` (manual: comma-separated `<author_slug>/vNNNN` refs), `baseline`, `approval`,
`canary_percent`, `watch_window`, `min_requests`, `watch_timeout`, `judge`, `max_rows`, `pod_profile` (a
profile of `configs/execution.yaml`, but `serving`: the model server's image has no evaluation stack).
Durations are what `twin deploy watch` takes (`90`, `30s`, `15m`, `1h`, `2d`; above zero); the form
refuses anything else, and `plan_evaluation` fails the run (no retry) when `watch_timeout` leaves the
`watch` task no time to roll back within its 5 h `execution_timeout` (at most 290m), before any pod
starts.

**Alerts.** Every task has a per-try budget (`execution_timeout`): `evaluate` 1 h, `canary` 15 min,
`watch` 5 h, every other task 5 min (the plan/check steps, and `approve`'s own code, its request and its
resumption; its wait for the approver is the response timeout above, which ends in a rejection, not a
failure). A try past its budget is killed and retried (2 retries, backoff from 1 min; `approve` none), and
a step's last failure pages (`TwinAlertNotifier`): a step stuck in every try pages about 3 times its
budget after it started (15 min; `evaluate` 3 h, `canary` 45 min), plus the retry delays. `watch` also
pages each failed try (`on_retry_callback`): a canary keeps its share of the traffic, unwatched, until a
retry follows it again, so a stuck watch pages 5 h after it started, not 15 h.

**Deadline:** 31 h 10 min from queued: a backstop for a run that makes no progress where no budget sees it
(steps not scheduled or never started). It is the longest run with nothing wrong: every step at its full
budget once (7 h: `watch` 5 h, `evaluate` 1 h, `canary` 15 min, six small steps of 5 min, 15 min for the
scheduler between them) plus the approval's full wait (24 h, and `approve`'s 10 min of code). Airflow 3.3
computes a `DeadlineAlert` once, when the run is created, from the DAG's fixed interval (DAG-level only:
no task-level deadline, no reference that follows the run's `approval` param), so one interval serves
runs with and without approval: it never fires while a run waits for its approver, and a stuck step
pages through its budget long before it. The budget counts one round of each mapped step: more
candidates than run side by side (4 tasks at a time; one `evaluate` at a time in local mode) take more.
Its clock starts when the run is queued, so a run queued behind another (`max_active_runs=1`) counts that
run's time too: one queued behind a run whose approver takes most of a day can still miss it.
"""

from __future__ import annotations

import re
from datetime import timedelta

from airflow.providers.standard.operators.empty import EmptyOperator
from airflow.providers.standard.operators.hitl import ApprovalOperator
from airflow.sdk import Param, dag, task
from twin_ops import dag_kwargs, twin_step_mapped
from twin_ops.assets import CANDIDATE_MODEL, PRODUCTION_MODEL
from twin_ops.config import execution_config
from twin_ops.notifiers import RETRY_MESSAGE, TwinAlertNotifier

# A duration as `twin deploy watch --window/--timeout` parse it (twin_core.deploy.analysis.parse_duration:
# a number, an optional unit ms/s/m/h/d, no unit = seconds), above zero (a 0 window is a config error, a
# 0 timeout rolls back at once).
DURATION = r"\s*(?=[\d.]*[1-9])(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?\s*"
_SECONDS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, None: 1}
MODEL_REF = r"[a-z0-9][a-z0-9-]*/v\d{4,}"  # <author_slug>/vNNNN, as the model registry names versions
# The form's evaluation pods: every profile of configs/execution.yaml (parse time: one small cached YAML, as the
# factory) but `serving`, whose image (twin-serving, the KServe model server) has no evaluation stack.
EVALUATION_POD_PROFILES = sorted(set(execution_config()["profiles"]) - {"serving"})
# Per-try budgets (execution_timeout): a try past its budget is killed and retried; the last failure pages.
STEP_TIMEOUT = timedelta(minutes=5)  # every task without its own: the plan/check steps, approve's own code
EVALUATE_EXECUTION_TIMEOUT = timedelta(hours=1)
CANARY_EXECUTION_TIMEOUT = timedelta(minutes=15)
WATCH_EXECUTION_TIMEOUT = timedelta(hours=5)
# The watch pod must start, and roll the canary back at its timeout, before execution_timeout kills it.
WATCH_ROLLBACK_MARGIN = timedelta(minutes=10)
MAX_WATCH_TIMEOUT = WATCH_EXECUTION_TIMEOUT - WATCH_ROLLBACK_MARGIN
APPROVAL_TIMEOUT = timedelta(hours=24)
# The deadline: the longest run with nothing wrong (doc above). The automated path, one try per step:
# plan_evaluation, check_gate, plan_approval, plan_canary, plan_watch, check_promoted (STEP_TIMEOUT each),
# evaluate, canary, watch; plus the scheduler between them. Then the approval's full wait.
SCHEDULING_ALLOWANCE = timedelta(minutes=15)
AUTOMATED_BUDGET = (
    6 * STEP_TIMEOUT + EVALUATE_EXECUTION_TIMEOUT + CANARY_EXECUTION_TIMEOUT + WATCH_EXECUTION_TIMEOUT
) + SCHEDULING_ALLOWANCE  # 7 h
APPROVAL_BUDGET = APPROVAL_TIMEOUT + 2 * STEP_TIMEOUT  # approve: its request, the wait, its resumption
RUN_DEADLINE = AUTOMATED_BUDGET + APPROVAL_BUDGET  # 31 h 10 min


def duration_seconds(text: str) -> float | None:
    """Seconds of a DURATION; None for anything else."""
    match = re.fullmatch(DURATION, text)
    return float(match.group(1)) * _SECONDS[match.group(2)] if match else None


@dag(
    dag_id="twin_evaluation",
    schedule=[CANDIDATE_MODEL],
    params={
        "models": Param(
            "",
            type="string",
            pattern=rf"^(\s*{MODEL_REF}\s*(,\s*{MODEL_REF}\s*)*)?$",
            title="Models",
            description="Manual runs: <author_slug>/vNNNN, comma-separated.",
        ),
        "baseline": Param(
            "production",
            type="string",
            pattern=rf"^\s*(production|base|{MODEL_REF})\s*$",
            title="Baseline",
            description="production, base or a model version <author_slug>/vNNNN.",
        ),
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
            "",
            type="string",
            pattern=f"^({DURATION})?$",
            title="Analysis window",
            description="Log read back per analysis (e.g. 15m); empty: the interval.",
        ),
        "min_requests": Param(
            20, type="integer", minimum=1, title="Min canary requests", description="Per analysis; fewer: hold."
        ),
        "watch_timeout": Param(
            "2h",
            type="string",
            pattern=f"^{DURATION}$",
            title="Watch timeout",
            description="No decision by then: roll back (e.g. 2h; at most 290m).",
        ),
        "judge": Param(True, type="boolean", title="Judge scores", description="LLM judge (endpoint or local)."),
        "max_rows": Param(
            0,
            type="integer",
            minimum=0,
            title="Held-out rows",
            description="0 = configs/evaluation.yaml's; else at least its samples.min_rows (20): the gate decides "
            "on no fewer rows (evaluate refuses, exit 3).",
        ),
        "pod_profile": Param(
            "cpu",
            type="string",
            enum=EVALUATION_POD_PROFILES,
            title="Evaluation pod",
            description="Manual runs: configs/execution.yaml profile.",
        ),
    },
    **dag_kwargs(
        __doc__,
        tags=["evaluation", "deploy", "fti-inference-pipeline"],
        step_timeout=STEP_TIMEOUT,
        deadline=RUN_DEADLINE,
    ),
)
def twin_evaluation() -> None:
    @task
    def plan_evaluation(params: dict | None = None, **context) -> list[dict]:
        """One `twin evaluate` per candidate (the triggering Asset events, or the form), in a pod of the
        profile that trained it: the evaluation loads the same model."""
        from airflow.sdk.exceptions import AirflowFailException
        from twin_ops.config import profile

        params = params or {}
        # Bad watch settings fail here, not in `twin deploy watch` after the canary took traffic.
        window, timeout = str(params.get("watch_window") or ""), str(params.get("watch_timeout") or "2h")
        for name, value in (("watch_window", window), ("watch_timeout", timeout)):
            if value and duration_seconds(value) is None:
                raise AirflowFailException(f"{name} {value!r}: expected a duration above zero, like 30s, 15m or 2h")
        if (duration_seconds(timeout) or 0) > MAX_WATCH_TIMEOUT.total_seconds():
            raise AirflowFailException(
                f"watch_timeout {timeout} leaves the watch no time to roll back within its execution_timeout of "
                f"{WATCH_EXECUTION_TIMEOUT}: at most {MAX_WATCH_TIMEOUT} (e.g. 290m)"
            )
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
        response_timeout=APPROVAL_TIMEOUT,
        defaults="Reject",  # no answer in time: rejected, the rollout is skipped (the task succeeds)
        retries=0,  # a retry would ask the approver again while max_active_runs=1 holds later candidates
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
        """Alert on each rolled-back canary with its numbers (log, webhook, Slack: fails, and is retried,
        when one reached no configured channel); emit the production Asset for the promoted canaries
        (none promoted: skipped, no event)."""
        from airflow.sdk.exceptions import AirflowSkipException
        from twin_ops.notifiers import send_rollback_alerts

        promoted = sorted(w["model"] for w in watched or [] if w and w.get("decision") == "promote")
        for w in watched or []:
            if w:
                print(f"{w.get('model')}: {w.get('decision')} ({'; '.join(w.get('reasons') or [])})")
        send_rollback_alerts(list(watched or []), context)
        if not promoted:
            raise AirflowSkipException("no canary was promoted")
        extra = {"production": promoted}
        context["outlet_events"][PRODUCTION_MODEL].extra = extra
        return extra

    # profile=None: each candidate's evaluation pod gets its profile from plan_evaluation
    evaluate = twin_step_mapped(
        "evaluate", profile=None, qdrant=True, execution_timeout=EVALUATE_EXECUTION_TIMEOUT
    ).expand_kwargs(plan_evaluation())
    passed = check_gate(evaluate.output)
    switch = plan_approval()
    passed >> switch >> [approve, no_approval]
    canary_plan = plan_canary(passed)
    [approve, no_approval] >> canary_plan
    # deployer=True: the `twin deploy` pods alone get the Kubernetes API (the deployer service account)
    canary = twin_step_mapped(
        "canary", profile="cpu", deployer=True, execution_timeout=CANARY_EXECUTION_TIMEOUT
    ).expand(arguments=canary_plan)
    watch = twin_step_mapped(
        "watch",
        profile="cpu",
        deployer=True,
        execution_timeout=WATCH_EXECUTION_TIMEOUT,
        on_retry_callback=[TwinAlertNotifier(RETRY_MESSAGE, kind="retry")],  # its canary is unwatched meanwhile
    ).expand(arguments=plan_watch(canary.output))
    check_promoted(watch.output)


twin_evaluation()
