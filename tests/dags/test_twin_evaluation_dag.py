"""twin_evaluation: scheduled on the candidate Asset; evaluate -> gate -> optional approval -> canary ->
watch -> publish. Renders in both execution modes (the approval task included) and runs locally end to
end with dag.test (approval off, tiny real models, a 0 s watch window).

Runs in the Airflow environment: twin_core is never imported here; the steps run `.venv/bin/twin`."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace

import pytest
import yaml
from airflow.dag_processing.dagbag import DagBag
from airflow.sdk.exceptions import AirflowFailException, ParamValidationError
from support.dags import asset_condition, edges
from support.webhook import WebhookSink as Webhook

REPO_ROOT = Path(__file__).resolve().parents[2]
TWIN = REPO_ROOT / ".venv" / "bin" / "twin"
TWIN_PY = REPO_ROOT / ".venv" / "bin" / "python"
EVAL_FIXTURES = REPO_ROOT / "tests" / "evaluation" / "eval_fixtures.py"

EDGES = {
    "plan_evaluation": ["evaluate"],
    "evaluate": ["check_gate"],
    "check_gate": ["plan_approval", "plan_canary"],
    "plan_approval": ["approve", "no_approval"],
    "approve": ["plan_canary"],
    "no_approval": ["plan_canary"],
    "plan_canary": ["canary"],
    "canary": ["plan_watch"],
    "plan_watch": ["watch"],
    "watch": ["check_promoted"],
    "check_promoted": [],
}


DAG_ID = "twin_evaluation"  # the `dag` fixture (conftest.py) parses it in local mode


def test_schedule_graph_and_outlet(dag) -> None:
    assert "twin://models/candidate" in asset_condition(dag)
    assert edges(dag) == EDGES
    assert {a.uri for a in dag.get_task("check_promoted").outlets} == {"twin://models/production"}
    assert type(dag.get_task("approve")).__name__ == "ApprovalOperator"
    assert dag.params["approval"] is False and dag.params["canary_percent"] is None  # the first step weight
    assert dag.params["min_requests"] == 20


def test_plans_gate_and_promoted(dag) -> None:
    plan = dag.get_task("plan_evaluation").python_callable
    event = SimpleNamespace(extra={"models": ["ada/v0002", "bo/v0001"], "pod_profiles": {"ada/v0002": "gpu"}})
    params = {"baseline": "production", "judge": True, "max_rows": 0, "models": "", "pod_profile": "cpu"}
    assert plan(params, triggering_asset_events={"twin://models/candidate": [event]}) == [
        {"arguments": ["evaluate", "--model", "ada/v0002", "--baseline", "production"], "profile": "gpu"},
        {"arguments": ["evaluate", "--model", "bo/v0001", "--baseline", "production"], "profile": "cpu"},
    ]
    form = plan({"baseline": "base", "judge": False, "max_rows": 5, "models": "ada/v0003, ", "pod_profile": "gpu"})
    assert form == [
        {"arguments": ["evaluate", "--model", "ada/v0003", "--baseline", "base", "--no-judge", "--max-rows", "5"],
         "profile": "gpu"}
    ]  # fmt: skip
    with pytest.raises(AirflowFailException, match="unknown resource profile"):  # a config error: not retried
        plan({"models": "ada/v0003", "pod_profile": "huge"})

    gate = dag.get_task("check_gate").python_callable
    results = [
        {"model": "ada/v0002", "passed": True, "baseline": "ada/v0001", "missing": ["judge_style"]},
        {"model": "bo/v0001", "passed": False, "baseline": "base:x", "failing": ["perplexity", "style_similarity"]},
    ]
    assert gate(results) == ["ada/v0002"]
    from airflow.sdk.exceptions import AirflowSkipException

    with pytest.raises(AirflowSkipException, match="no candidate passed"):
        gate(results[1:])

    switch = dag.get_task("plan_approval").python_callable
    assert switch({"approval": True}) == "approve" and switch({"approval": False}) == "no_approval"
    canary = dag.get_task("plan_canary").python_callable(["ada/v0002"], {"canary_percent": 20})
    assert canary == [["deploy", "canary", "ada/v0002", "--percent", "20", "--reason", "passed the evaluation gate"]]
    watch = dag.get_task("plan_watch").python_callable(
        [{"model": {"ref": "ada/v0002"}}], {"watch_window": "15m", "min_requests": 30, "watch_timeout": "1h"}
    )
    assert watch == [
        ["deploy", "watch", "ada/v0002", "--follow", "--window", "15m", "--min-requests", "30", "--timeout", "1h"]
    ]
    first_step = dag.get_task("plan_canary").python_callable(["ada/v0002"], {"canary_percent": None})
    assert first_step == [["deploy", "canary", "ada/v0002", "--reason", "passed the evaluation gate"]]
    default_window = dag.get_task("plan_watch").python_callable([{"model": {"ref": "ada/v0002"}}], {})
    assert default_window == [["deploy", "watch", "ada/v0002", "--follow", "--min-requests", "20", "--timeout", "2h"]]


# What `twin deploy watch --window/--timeout` accepts (twin_core.deploy.analysis.parse_duration), above zero.
GOOD_DURATIONS = ["2h", "30s", "15m", "1d", "90", "1.5h", "500ms", " 15 m "]
BAD_DURATIONS = ["2 hours", "2h30m", "1w", "-1h", "h", "0", "0s", "0.0m", "2H"]


@pytest.mark.parametrize("value", GOOD_DURATIONS)
def test_the_form_takes_durations_as_twin_deploy_watch_does(dag, value: str) -> None:
    assert dag.params.get_param("watch_timeout").resolve(value) == value
    assert dag.params.get_param("watch_window").resolve(value) == value


@pytest.mark.parametrize("value", BAD_DURATIONS)
def test_the_form_refuses_what_twin_deploy_watch_would_refuse_after_the_canary(dag, value: str) -> None:
    with pytest.raises(ParamValidationError):
        dag.params.get_param("watch_timeout").resolve(value)
    with pytest.raises(ParamValidationError):
        dag.params.get_param("watch_window").resolve(value)


def test_the_form_takes_an_empty_window_not_an_empty_timeout(dag) -> None:
    assert dag.params.get_param("watch_window").resolve("") == ""  # the interval of configs/deploy.yaml
    with pytest.raises(ParamValidationError):
        dag.params.get_param("watch_timeout").resolve("")


@pytest.mark.parametrize("value", ["", "ada/v0003", "ada-q/v0002,bo/v0001", " ada-q/v0002 , bo/v10000 "])
def test_the_form_takes_model_refs(dag, value: str) -> None:
    assert dag.params.get_param("models").resolve(value) == value


@pytest.mark.parametrize("value", ["ada", "ada/v2", "Ada/v0001", "ada/0001", "ada/v0001;bo/v0002", "ada/v0001,", ","])
def test_the_form_refuses_what_is_not_a_list_of_model_refs(dag, value: str) -> None:
    with pytest.raises(ParamValidationError):
        dag.params.get_param("models").resolve(value)


@pytest.mark.parametrize("value", ["production", "base", "ada/v0001", " bo-q/v10000 "])
def test_the_form_takes_the_baselines_twin_evaluate_takes(dag, value: str) -> None:
    assert dag.params.get_param("baseline").resolve(value) == value


@pytest.mark.parametrize("value", ["", "foo", "prod", "ada", "ada/v1", "production,base", "Base"])
def test_the_form_refuses_a_baseline_every_evaluate_pod_would_refuse(dag, value: str) -> None:
    with pytest.raises(ParamValidationError):
        dag.params.get_param("baseline").resolve(value)


def test_the_form_offers_the_execution_profiles_as_evaluation_pods(dag) -> None:
    """Every task profile of execution.yaml, not `serving` (twin-serving, the model server, has no evaluation
    stack: `twin evaluate` would fail on its imports)."""
    profiles = sorted(yaml.safe_load((REPO_ROOT / "configs" / "execution.yaml").read_text())["profiles"])
    pod = dag.params.get_param("pod_profile")
    assert pod.schema["enum"] == [p for p in profiles if p != "serving"] and "gpu-multi" in profiles
    assert pod.resolve("gpu-multi") == "gpu-multi" and pod.resolve("cpu-train") == "cpu-train"
    for refused in ("huge", "serving"):
        with pytest.raises(ParamValidationError):
            pod.resolve(refused)


@pytest.mark.parametrize("timeout", ["5h", "6h", "291m", "17401s", "1d"])
def test_a_watch_timeout_the_watch_task_would_not_live_to_see_fails_the_plan(dag, timeout: str) -> None:
    """The watch task's execution_timeout is 5 h: a longer watch (or one that leaves no time to roll back)
    would be killed and retried with the canary left at its weight. Refused before any pod, no retry."""
    assert dag.get_task("watch").partial_kwargs["execution_timeout"] == timedelta(hours=5)
    plan = dag.get_task("plan_evaluation").python_callable
    with pytest.raises(AirflowFailException, match=f"watch_timeout {timeout} leaves the watch no time to roll back"):
        plan({"models": "ada/v0003", "pod_profile": "cpu", "watch_timeout": timeout})


@pytest.mark.parametrize("timeout", ["290m", "4h", "2h", "17400s"])
def test_a_watch_timeout_within_the_watch_task_is_planned(dag, timeout: str) -> None:
    plan = dag.get_task("plan_evaluation").python_callable
    assert plan({"models": "ada/v0003", "pod_profile": "cpu", "watch_timeout": timeout})[0]["profile"] == "cpu"


@pytest.mark.parametrize(("name", "value"), [("watch_timeout", "2 hours"), ("watch_window", "0m")])
def test_a_bad_watch_setting_fails_the_plan_not_the_watch(dag, name: str, value: str) -> None:
    plan = dag.get_task("plan_evaluation").python_callable
    with pytest.raises(AirflowFailException, match=f"{name} '{value}': expected a duration above zero"):
        plan({"models": "ada/v0003", "pod_profile": "cpu", name: value})


def test_a_run_with_a_bad_watch_setting_never_reaches_the_canary(dag, run_dag) -> None:
    """dag.test: the form refuses a bad duration; a too long timeout fails plan_evaluation once (no retry)
    and nothing downstream runs: no evaluation pod, no canary."""
    with pytest.raises(ParamValidationError):
        run_dag(dag, run_conf={"models": "ada/v0003", "watch_timeout": "2 hours"})
    run, states = run_dag(dag, run_conf={"models": "ada/v0003", "watch_timeout": "5h"})
    assert run.state == "failed"
    assert states[("plan_evaluation", -1)] == "failed"
    [plan] = [ti for ti in run.get_task_instances() if ti.task_id == "plan_evaluation"]
    assert plan.try_number == 1
    assert {states[(t, -1)] for t in ("evaluate", "check_gate", "plan_canary", "canary", "watch")} == {
        "upstream_failed"
    }


def test_an_unanswered_approval_is_a_rejection_asked_once(dag, monkeypatch: pytest.MonkeyPatch) -> None:
    """No answer within the response timeout: the scheduler resumes the task with its defaults (Reject), the
    rollout is skipped and the task succeeds; no retry asks the approver again."""
    approve = dag.get_task("approve")
    assert approve.retries == 0 and approve.response_timeout == timedelta(hours=24)
    assert approve.defaults == ["Reject"] and approve.fail_on_reject is False
    skipped: list[str] = []
    monkeypatch.setattr(approve, "skip", lambda ti, tasks: skipped.extend(t.task_id for t in tasks))
    # the event the scheduler's AWAITING_INPUT timeout sweep resumes the task with (HITLDetail defaults)
    timed_out = {"chosen_options": list(approve.defaults), "params_input": {}, "responded_at": datetime.now(UTC),
                 "responded_by_user": None, "timedout": True}  # fmt: skip
    approve.execute_complete(context={"task": approve, "ti": None}, event=timed_out)
    assert skipped == ["plan_canary"]  # canary, watch and check_promoted follow it


# -- alerts: per-try budgets, and a deadline that holds the approver's wait -------------------------------
# Each task's execution_timeout (per try): a stuck try is killed, retried, and the last failure pages.
BUDGETS = {
    "plan_evaluation": timedelta(minutes=5),
    "evaluate": timedelta(hours=1),
    "check_gate": timedelta(minutes=5),
    "plan_approval": timedelta(minutes=5),
    "approve": timedelta(minutes=5),  # its own code, request and resumption; not the wait (response_timeout)
    "no_approval": timedelta(minutes=5),  # an EmptyOperator: the scheduler marks it done, nothing runs
    "plan_canary": timedelta(minutes=5),
    "canary": timedelta(minutes=15),
    "plan_watch": timedelta(minutes=5),
    "watch": timedelta(hours=5),
    "check_promoted": timedelta(minutes=5),
}
SCHEDULING_ALLOWANCE = timedelta(minutes=15)  # the scheduler's time between the steps of one run
DEADLINE = timedelta(hours=31, minutes=10)


def _longest(task) -> timedelta:  # noqa: ANN001
    """The longest a task can take with nothing wrong, one try: its execution_timeout; the approval: its
    request and its resumption around the approver's full response time; an EmptyOperator: nothing."""
    kind = type(task).__name__
    if kind == "EmptyOperator":
        return timedelta(0)
    if kind == "ApprovalOperator":
        return task.execution_timeout + task.response_timeout + task.execution_timeout
    return task.execution_timeout


def _longest_path(dag) -> tuple[timedelta, list[str]]:  # noqa: ANN001
    """The run's longest path through the graph, each task at ``_longest``."""
    memo: dict[str, tuple[timedelta, list[str]]] = {}

    def from_task(task_id: str) -> tuple[timedelta, list[str]]:
        if task_id not in memo:
            task = dag.get_task(task_id)
            rest = max((from_task(d) for d in task.downstream_task_ids), default=(timedelta(0), []))
            memo[task_id] = (_longest(task) + rest[0], [task_id, *rest[1]])
        return memo[task_id]

    return max(from_task(t.task_id) for t in dag.roots)


def test_every_task_has_a_per_try_budget_and_a_stuck_step_pages_before_the_deadline(dag) -> None:
    """Every task (a new one too: the set is exact) is killed at its budget; after its 2 retries the last
    failure pages (TwinAlertNotifier). A step stuck in every try pages 3 budgets (+ backoff) after it started,
    well before the run's deadline."""
    assert {t.task_id: t.execution_timeout for t in dag.tasks} == BUDGETS
    approve = dag.get_task("approve")
    assert approve.response_timeout == timedelta(hours=24)  # the wait stays the approver's, not the budget's
    for t in dag.tasks:
        assert t.on_failure_callback, t.task_id
    stuck = {t.task_id: (t.retries + 1) * t.execution_timeout for t in dag.tasks if t.task_id != "approve"}
    assert stuck == {
        **{t: timedelta(minutes=15) for t in BUDGETS if t not in ("approve", "evaluate", "canary", "watch")},
        "evaluate": timedelta(hours=3),
        "canary": timedelta(minutes=45),
        "watch": timedelta(hours=15),
    }
    max_backoff = dag.default_args["max_retry_delay"]
    assert max(stuck.values()) + 2 * max_backoff < dag.deadline[0].interval
    # the watch's canary holds traffic unwatched while it is retried: its first failed try pages (5 h, not 15)
    assert [t.task_id for t in dag.tasks if t.on_retry_callback] == ["watch"]


def test_a_failed_watch_try_pages_before_its_retry(dag, webhook: Webhook) -> None:
    """The retry callback's page names the mapped instance, the try and the reason; its dedup_key is the try's."""
    watch = dag.get_task("watch")
    [notifier] = watch.on_retry_callback
    ti = SimpleNamespace(task_id="watch", map_index=0, try_number=1)
    notifier({"dag": dag, "ti": ti, "run_id": "manual__1", "exception": TimeoutError("Timeout: 18000 s")})
    [body] = webhook.bodies
    assert body == {
        "text": "twin_evaluation.watch[0] try 1 failed, retried (run manual__1): Timeout: 18000 s",
        "dedup_key": "llm-twin:retry:twin_evaluation:manual__1:watch:0:1",
    }


def test_the_deadline_is_the_longest_run_with_nothing_wrong(dag) -> None:
    """One DAG-level DeadlineAlert from the run's queued time (Airflow 3.3 has no task-level one, and
    computes it once, at run creation, so it cannot follow the `approval` param): the longest path at full
    budget, approval on, waiting the approver's full 24 h, plus the scheduler's allowance. It cannot fire
    while a run waits for its approver (the old 6 h one did, in any wait of more than about 5 h)."""
    from airflow.sdk.definitions.deadline import DagRunQueuedAtDeadline

    [alert] = dag.deadline
    assert isinstance(alert.reference, DagRunQueuedAtDeadline)
    assert alert.callback.path == "twin_ops.notifiers.deadline_missed"
    assert alert.callback.kwargs == {"interval": "1 day, 7:10:00"}  # as the page words it
    longest, path = _longest_path(dag)
    assert path == ["plan_evaluation", "evaluate", "check_gate", "plan_approval", "approve", "plan_canary",
                    "canary", "plan_watch", "watch", "check_promoted"]  # fmt: skip
    approve = dag.get_task("approve")
    automated = longest - approve.response_timeout - 2 * approve.execution_timeout
    assert automated == 6 * timedelta(minutes=5) + timedelta(hours=1) + timedelta(minutes=15) + timedelta(hours=5)
    assert alert.interval == longest + SCHEDULING_ALLOWANCE == DEADLINE
    assert "**Deadline:** 31 h 10 min from queued" in dag.doc_md
    assert "can fire while it waits" not in dag.doc_md


def test_the_scheduler_sets_one_deadline_with_or_without_approval() -> None:
    """Airflow 3.3's own path: the serialized DAG in the metadata DB, create_dagrun writes the Deadline row,
    queued_at + the interval, the same whatever the run's conf (the deadline cannot follow `approval`)."""
    from uuid import uuid4

    from airflow.dag_processing.bundles.manager import DagBundlesManager
    from airflow.dag_processing.dagbag import BundleDagBag, sync_bag_to_db
    from airflow.models.deadline import Deadline
    from airflow.models.serialized_dag import SerializedDagModel
    from airflow.utils import db
    from airflow.utils.session import create_session
    from airflow.utils.state import DagRunState
    from airflow.utils.types import DagRunTriggeredByType, DagRunType
    from sqlalchemy import select

    db.initdb()
    with create_session() as session:
        DagBundlesManager().sync_bundles_to_db(session=session)  # the dags-folder bundle (AIRFLOW__CORE__DAGS_FOLDER)
    dags = REPO_ROOT / "dags"
    bag = BundleDagBag(dag_folder=dags / "twin_evaluation.py", bundle_path=dags, bundle_name="dags-folder")
    sync_bag_to_db(bag, "dags-folder", None)
    with create_session() as session:
        scheduler_dag = SerializedDagModel.get_dag(DAG_ID, session=session)
        for conf in ({}, {"approval": True}):
            run = scheduler_dag.create_dagrun(
                run_id=f"manual__{uuid4().hex}", logical_date=None, data_interval=None,
                run_after=datetime.now(UTC), conf=conf, run_type=DagRunType.MANUAL, state=DagRunState.QUEUED,
                triggered_by=DagRunTriggeredByType.TEST, session=session,
            )  # fmt: skip
            session.flush()
            [deadline] = session.scalars(select(Deadline).where(Deadline.dagrun_id == run.id)).all()
            assert deadline.deadline_time - run.queued_at == DEADLINE, conf
            assert deadline.callback.data["path"] == "twin_ops.notifiers.deadline_missed"
        assert scheduler_dag.get_task("evaluate").execution_timeout == timedelta(hours=1)  # the budgets too
        session.rollback()  # no runs left behind for the other tests of this metadata DB


@pytest.mark.parametrize("mode", ["local", "kubernetes"])
def test_renders_in_both_modes(monkeypatch: pytest.MonkeyPatch, render_pod, mode: str) -> None:
    monkeypatch.setenv("TWIN_EXECUTION", mode)
    bag = DagBag(str(REPO_ROOT / "dags"))
    assert bag.import_errors == {}
    dag = bag.dags["twin_evaluation"]
    assert edges(dag) == EDGES  # same graph, approval included
    approve = dag.get_task("approve")
    assert approve.options == ["Approve", "Reject"] and "{{ ti.xcom_pull(task_ids='check_gate') }}" in approve.subject
    if mode == "local":
        assert dag.get_task("evaluate").partial_kwargs["pool"] == "twin_embedded_qdrant"
        return
    for task_id, args in (
        ("evaluate", ["evaluate", "--model", "ada/v0002"]),  # a manual run's default pod: cpu
        ("canary", ["deploy", "canary", "ada/v0002"]),
        ("watch", ["deploy", "watch", "ada/v0002", "--follow"]),
    ):
        manifest = render_pod(dag.get_task(task_id), args)
        container = manifest["spec"]["containers"][0]
        assert container["args"] == args and container["image"].split("/")[-1].startswith("twin-core:")
        assert manifest["metadata"]["labels"]["llm-twin/profile"] == "cpu"
        # only the `twin deploy` pods run as the deployer (Kubernetes API token); evaluate has no token
        deployer = task_id != "evaluate"
        spec = manifest["spec"]
        assert spec["serviceAccountName"] == ("llm-twin-deployer" if deployer else "llm-twin-tasks")
        assert spec["automountServiceAccountToken"] is deployer
        assert ("llm-twin/deployer" in manifest["metadata"]["labels"]) is deployer
        if deployer:
            assert manifest["metadata"]["labels"]["llm-twin/deployer"] == "true"


def test_the_evaluation_pod_is_the_candidates_training_pod(monkeypatch: pytest.MonkeyPatch, render_pod) -> None:
    monkeypatch.setenv("TWIN_EXECUTION", "kubernetes")
    dag = DagBag(str(REPO_ROOT / "dags")).dags["twin_evaluation"]
    event = SimpleNamespace(extra={"models": ["ada/v0002"], "pod_profiles": {"ada/v0002": "gpu-multi"}})
    params = {"baseline": "production", "judge": True, "pod_profile": "cpu"}
    [kwargs] = dag.get_task("plan_evaluation").python_callable(params, triggering_asset_events={"c": [event]})
    manifest = render_pod(dag.get_task("evaluate"), **kwargs)
    container = manifest["spec"]["containers"][0]
    assert manifest["metadata"]["labels"]["llm-twin/profile"] == "gpu-multi"
    assert container["args"] == kwargs["arguments"] and container["resources"]["limits"]["nvidia.com/gpu"] == "4"


# -- a rolled-back canary pages, with its numbers -----------------------------------------------------------
@pytest.fixture
def webhook(monkeypatch: pytest.MonkeyPatch) -> Iterator[Webhook]:
    hook = Webhook()
    monkeypatch.setenv("TWIN_ALERT_WEBHOOK_URL", hook.url)
    monkeypatch.delenv("TWIN_ALERT_SLACK_CONN_ID", raising=False)
    yield hook
    hook.close()


# The JSON result of `twin deploy watch --follow` for a canary its analyses rolled back (deploy/watch.py).
ROLLED_BACK = {
    "model": "ada/v0002", "decision": "rollback", "action": "rollback", "result": "fail",
    "reasons": ["request-success-rate 0.8 out of {'min': 0.95}: success rate 0.800 (16/20 ok); n canary 20, "
                "production 180; 95% CI [0.584, 0.919] wholly out of range", "failed checks 2/2"],
    "weight": 10, "next_weight": None, "failed_checks": 2,
    "analysis": {"at": "2026-11-21T10:15:00+00:00", "threshold": 2, "min_requests": 20, "interval_s": 300,
                 "window": ["2026-11-21T10:00:00+00:00", "2026-11-21T10:15:00+00:00"], "window_s": 900},
    "canary": {"requests": 21, "counted": 20, "errors": 4, "success_rate": 0.8, "success_ci95": [0.584, 0.919],
               "p95_ms": 950.0},
    "production": {"requests": 180, "counted": 180, "errors": 0, "success_rate": 1.0, "success_ci95": [0.979, 1.0],
                   "p95_ms": 610.0},
    "checks": [], "rollout": {"stage": "archived"},
}  # fmt: skip


def test_a_rolled_back_canary_pages_with_its_numbers(dag, webhook: Webhook) -> None:
    from airflow.sdk.exceptions import AirflowSkipException

    check = dag.get_task("check_promoted").python_callable
    with pytest.raises(AirflowSkipException, match="no canary was promoted"):
        check([ROLLED_BACK, None])
    [body] = webhook.bodies
    assert body["text"] == (
        "LLM Twin canary ada/v0002 rolled back at 10% traffic: request-success-rate 0.8 out of {'min': 0.95}: "
        "success rate 0.800 (16/20 ok); n canary 20, production 180; 95% CI [0.584, 0.919] wholly out of range; "
        "failed checks 2/2. canary: 21 requests, 20 counted, 4 errors, success "
        "rate 0.8 (95% CI [0.584, 0.919]), p95 950.0 ms; production: 180 requests, 180 counted, 0 errors, success "
        "rate 1.0 (95% CI [0.979, 1.0]), p95 610.0 ms; analysis window 2026-11-21T10:00:00+00:00 .. "
        "2026-11-21T10:15:00+00:00, failed analyses 2/2"
    )
    assert body["kind"] == "rollback" and body["model"] == "ada/v0002" and body["weight"] == 10
    assert body["dedup_key"] == "llm-twin:rollback:ada/v0002" and webhook.keys == [body["dedup_key"]]
    assert body["canary"] == ROLLED_BACK["canary"] and body["production"] == ROLLED_BACK["production"]
    assert body["analysis"]["window"] == ROLLED_BACK["analysis"]["window"]


def test_a_promotion_pages_no_one_and_a_lost_rollback_alert_fails_the_task(dag, webhook: Webhook) -> None:
    from twin_ops.assets import PRODUCTION_MODEL

    check = dag.get_task("check_promoted").python_callable
    promoted = {"model": "bo/v0003", "decision": "promote", "reasons": ["all checks passed at 50%; promote"]}
    outlets = {PRODUCTION_MODEL: SimpleNamespace(extra=None)}
    assert check([promoted], outlet_events=outlets) == {"production": ["bo/v0003"]}
    assert webhook.bodies == []
    webhook.status = 503  # the only channel down: the rollback alert reached no one -> retried
    with pytest.raises(RuntimeError, match="rollback alert of ada/v0002 reached no alert channel"):
        check([promoted, ROLLED_BACK], outlet_events=outlets)


def test_the_watch_timeout_rollback_pages_too(dag, webhook: Webhook) -> None:
    """Fail closed: no verdict before --timeout (the last analysis held) rolls back, with that analysis."""
    from airflow.sdk.exceptions import AirflowSkipException

    reasons = ["request-success-rate: 3/180 requests (ok + errors) < 20 on the canary side",
               "canary analysis: no promotion before the watch timeout of 7200 s (fail closed)"]  # fmt: skip
    timed_out = {**ROLLED_BACK, "result": "hold", "action": "hold", "failed_checks": 0, "reasons": reasons}
    with pytest.raises(AirflowSkipException):
        dag.get_task("check_promoted").python_callable([timed_out])
    timed_out_at_once = {"model": "ada/v0002", "decision": "rollback", "reasons": reasons[1:]}  # after a not-due
    with pytest.raises(AirflowSkipException):
        dag.get_task("check_promoted").python_callable([timed_out_at_once])
    assert [b["text"] for b in webhook.bodies] == [
        "LLM Twin canary ada/v0002 rolled back at 10% traffic: request-success-rate: 3/180 requests (ok + errors) "
        "< 20 on the canary side; canary analysis: no promotion before the watch timeout of 7200 s (fail closed). "
        "canary: 21 requests, 20 counted, 4 errors, success rate 0.8 (95% CI [0.584, 0.919]), p95 950.0 ms; "
        "production: 180 requests, 180 counted, 0 errors, success rate 1.0 (95% CI [0.979, 1.0]), p95 610.0 ms; "
        "analysis window 2026-11-21T10:00:00+00:00 .. 2026-11-21T10:15:00+00:00, failed analyses 0/2",
        "LLM Twin canary ada/v0002 rolled back: canary analysis: no promotion before the watch timeout of 7200 s "
        "(fail closed). No analysis numbers in the watch result: `twin registry show ada/v0002` has its history.",
    ]


@pytest.mark.slow
@pytest.mark.skipif(not TWIN.exists(), reason="the twin_core environment (.venv) is not built")
def test_dag_runs_locally(dag, tmp_path: Path, twin_env, run_dag, twin, webhook: Webhook) -> None:
    gate_config = tmp_path / "evaluation.yaml"  # tiny untrained models: a gate they can pass
    gate_config.write_text(
        "samples: {max_rows: 2, min_rows: 2, max_new_tokens: 8}\n"
        "gate:\n  metrics:\n    perplexity: {better: lower, max_ratio: 1000}\n"
        "    rouge_l: {better: higher, min_delta: -1}\n"
    )
    env = twin_env(
        TWIN_LLM_THREADS="1",
        TWIN_LLM_MODELS_DIR=str(REPO_ROOT / ".pytest_cache" / "d" / "twin-llm-models"),
        TWIN_EVAL_CONFIG=str(gate_config),
        TWIN_DEPLOY_TARGET="local",
        COMET_API_KEY="",
    )
    out = subprocess.run(
        [str(TWIN_PY), str(EVAL_FIXTURES), str(tmp_path / "models")],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    ref = out.stdout.strip().splitlines()[-1]
    # No traffic reaches the canary in dag.test: the analysis holds, and the watch timeout rolls it
    # back (fail closed): a canary nobody used is never promoted.
    conf = {"models": ref, "baseline": "base", "judge": False, "approval": False,
            "min_requests": 1, "watch_timeout": "5s"}  # fmt: skip
    run, states = run_dag(dag, run_conf=conf)
    assert run.state == "success", states
    assert states[("evaluate", 0)] == "success" and states[("check_gate", -1)] == "success"
    assert states[("approve", -1)] == "skipped" and states[("no_approval", -1)] == "success"
    assert states[("canary", 0)] == "success" and states[("watch", 0)] == "success"
    assert states[("check_promoted", -1)] == "skipped"  # nothing promoted: no production Asset event
    [page] = webhook.bodies  # the rollback pages, with the numbers of the watch's last analysis
    assert page["kind"] == "rollback" and page["model"] == ref and "fail closed" in page["text"]
    assert page["text"].startswith(f"LLM Twin canary {ref} rolled back"), page
    model = twin(env, "registry", "show", ref)["model"]
    assert model["stage"] == "archived"
    stages = [h["to_stage"] for h in model["history"] if h.get("to_stage")]
    assert stages[0] == "candidate" and stages[1] == "canary" and stages[-1] == "archived"
    assert "fail closed" in model["history"][-1]["reason"]
