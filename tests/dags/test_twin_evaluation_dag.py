"""twin_evaluation: scheduled on the candidate Asset; evaluate -> gate -> optional approval -> canary ->
watch -> publish. Renders in both execution modes (the approval task included) and runs locally end to
end with dag.test (approval off, tiny real models, a 0 s watch window).

Runs in the Airflow environment: twin_core is never imported here; the steps run `.venv/bin/twin`."""

from __future__ import annotations

import subprocess
from pathlib import Path
from types import SimpleNamespace

import pytest
from airflow.dag_processing.dagbag import DagBag
from support.dags import asset_condition, edges

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
    with pytest.raises(ValueError, match="unknown resource profile"):
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


@pytest.mark.slow
@pytest.mark.skipif(not TWIN.exists(), reason="the twin_core environment (.venv) is not built")
def test_dag_runs_locally(dag, tmp_path: Path, twin_env, run_dag, twin) -> None:
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
    model = twin(env, "registry", "show", ref)["model"]
    assert model["stage"] == "archived"
    stages = [h["to_stage"] for h in model["history"] if h.get("to_stage")]
    assert stages[0] == "candidate" and stages[1] == "canary" and stages[-1] == "archived"
    assert "fail closed" in model["history"][-1]["reason"]
