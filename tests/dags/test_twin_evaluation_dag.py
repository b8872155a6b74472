"""twin_evaluation: scheduled on the candidate Asset; evaluate -> gate -> optional approval -> canary ->
watch -> publish. Renders in both execution modes (the approval task included) and runs locally end to
end with dag.test (approval off, tiny real models, a 0 s watch window).

Runs in the Airflow environment: twin_core is never imported here; the steps run `.venv/bin/twin`."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from types import SimpleNamespace

import kubernetes_validate
import pytest
from airflow.dag_processing.dagbag import DagBag
from kubernetes.client import ApiClient

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


@pytest.fixture
def dag(local_dagbag):
    return local_dagbag.dags["twin_evaluation"]


def test_schedule_graph_and_outlet(dag) -> None:
    assert type(dag.timetable).__name__ == "AssetTriggeredTimetable"
    assert "twin://models/candidate" in str(dag.timetable.asset_condition)
    assert {t.task_id: sorted(t.downstream_task_ids) for t in dag.tasks} == EDGES
    assert {a.uri for a in dag.get_task("check_promoted").outlets} == {"twin://models/production"}
    assert type(dag.get_task("approve")).__name__ == "ApprovalOperator"
    assert dag.params["approval"] is False and dag.params["canary_percent"] == 10


def test_plans_gate_and_promoted(dag) -> None:
    plan = dag.get_task("plan_evaluation").python_callable
    event = SimpleNamespace(extra={"models": ["ada/v0002", "bo/v0001"]})
    params = {"baseline": "production", "judge": True, "max_rows": 0, "models": ""}
    assert plan(params, triggering_asset_events={"twin://models/candidate": [event]}) == [
        ["evaluate", "--model", "ada/v0002", "--baseline", "production"],
        ["evaluate", "--model", "bo/v0001", "--baseline", "production"],
    ]
    form = plan({"baseline": "base", "judge": False, "max_rows": 5, "models": "ada/v0003, "})
    assert form == [["evaluate", "--model", "ada/v0003", "--baseline", "base", "--no-judge", "--max-rows", "5"]]

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


def _validate(pod) -> dict:
    manifest = ApiClient().sanitize_for_serialization(pod)
    manifest.setdefault("apiVersion", "v1")
    manifest.setdefault("kind", "Pod")
    kubernetes_validate.validate(manifest, "1.33.0", strict=True)
    return manifest


@pytest.mark.parametrize("mode", ["local", "kubernetes"])
def test_renders_in_both_modes(monkeypatch: pytest.MonkeyPatch, mode: str) -> None:
    monkeypatch.setenv("TWIN_EXECUTION", mode)
    bag = DagBag(str(REPO_ROOT / "dags"))
    assert bag.import_errors == {}
    dag = bag.dags["twin_evaluation"]
    assert {t.task_id: sorted(t.downstream_task_ids) for t in dag.tasks} == EDGES  # same graph, approval included
    approve = dag.get_task("approve")
    assert approve.options == ["Approve", "Reject"] and "{{ ti.xcom_pull(task_ids='check_gate') }}" in approve.subject
    if mode == "local":
        assert dag.get_task("evaluate").partial_kwargs["pool"] == "twin_embedded_qdrant"
        return
    from airflow.providers.cncf.kubernetes.operators.pod import KubernetesPodOperator

    for task_id, args in (
        ("evaluate", ["evaluate", "--model", "ada/v0002"]),
        ("canary", ["deploy", "canary", "ada/v0002"]),
        ("watch", ["deploy", "watch", "ada/v0002", "--follow"]),
    ):
        task = dag.get_task(task_id)
        kwargs = {k: v for k, v in task.partial_kwargs.items() if k != "task_id"}
        op = KubernetesPodOperator(task_id=task_id, arguments=args, **kwargs)
        manifest = _validate(op.build_pod_request_obj(dry_run=True))
        container = manifest["spec"]["containers"][0]
        assert container["args"] == args and container["image"].split("/")[-1].startswith("twin-core:")
        assert manifest["metadata"]["labels"]["llm-twin/profile"] == "cpu"


@pytest.mark.slow
@pytest.mark.skipif(not TWIN.exists(), reason="the twin_core environment (.venv) is not built")
def test_dag_runs_locally(dag, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    home = tmp_path / "twin"
    gate_config = tmp_path / "evaluation.yaml"  # tiny untrained models: a gate they can pass
    gate_config.write_text(
        "samples: {max_rows: 2, max_new_tokens: 8}\n"
        "gate:\n  metrics:\n    perplexity: {better: lower, max_ratio: 1000}\n"
        "    rouge_l: {better: higher, min_delta: -1}\n"
    )
    env = {
        "TWIN_HOME": str(home),
        "HF_HUB_OFFLINE": "1",
        "TWIN_PROGRESS": "0",
        "TWIN_LLM_THREADS": "1",
        "TWIN_LLM_MODELS_DIR": str(REPO_ROOT / ".pytest_cache" / "d" / "twin-llm-models"),
        "TWIN_EVAL_CONFIG": str(gate_config),
        "TWIN_DEPLOY_TARGET": "local",
        "COMET_API_KEY": "",
    }
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    full_env = {**os.environ, **env}
    out = subprocess.run(
        [str(TWIN_PY), str(EVAL_FIXTURES), str(tmp_path / "models")],
        env=full_env,
        capture_output=True,
        text=True,
        check=True,
    )
    ref = out.stdout.strip().splitlines()[-1]

    from airflow.utils import db

    db.initdb()
    conf = {"models": ref, "baseline": "base", "judge": False, "approval": False, "watch_window": "0s",
            "min_requests": 0, "watch_timeout": "1m"}  # fmt: skip
    # Airflow 3.3's dag.test() passes DeadlineAlert objects where the DagRun expects stored alert ids
    # (AttributeError 'dict' object has no attribute 'hex'); deadlines are tested in test_twin_monitoring_dag.
    monkeypatch.setattr(dag, "deadline", None)
    run = dag.test(run_conf=conf)
    states = {(ti.task_id, ti.map_index): ti.state for ti in run.get_task_instances()}
    assert run.state == "success", states
    assert states[("evaluate", 0)] == "success" and states[("check_gate", -1)] == "success"
    assert states[("approve", -1)] == "skipped" and states[("no_approval", -1)] == "success"
    assert states[("canary", 0)] == "success" and states[("watch", 0)] == "success"
    assert states[("check_promoted", -1)] == "success"
    promoted = next(ti for ti in run.get_task_instances() if ti.task_id == "check_promoted")
    assert promoted.xcom_pull(task_ids="check_promoted") == {"production": [ref]}
    shown = subprocess.run([str(TWIN), "registry", "show", ref], env=full_env, capture_output=True, text=True)
    model = json.loads(shown.stdout.strip().splitlines()[-1])["model"]
    assert model["stage"] == "production"
    assert [h["to_stage"] for h in model["history"]] == ["candidate", "canary", "production"]
    assert model["history"][-1]["reason"].startswith("watch: healthy")
