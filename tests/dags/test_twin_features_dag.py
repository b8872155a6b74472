"""twin_features: scheduled on the raw Asset, one featurize task per author, publishes both feature
Assets; and it runs locally end to end (dag.test with TWIN_EXECUTION=local on a tiny warehouse)."""

from __future__ import annotations

from pathlib import Path

import pytest
from support.dags import asset_condition, edges

REPO_ROOT = Path(__file__).resolve().parents[2]
TWIN = REPO_ROOT / ".venv" / "bin" / "twin"


DAG_ID = "twin_features"  # the `dag` fixture (conftest.py) parses it in local mode


def test_schedule_graph_and_outlets(dag) -> None:
    assert "twin://warehouse/raw" in asset_condition(dag)
    assert edges(dag) == {
        "list_authors": ["plan_authors"],
        "plan_authors": ["featurize_author"],
        "featurize_author": ["sync_and_publish"],
        "sync_and_publish": [],
    }
    publish = dag.get_task("sync_and_publish")
    assert {a.uri for a in publish.outlets} == {"twin://features/cleaned", "twin://features/embedded"}
    assert publish.arguments == ["features", "run"]
    # local Qdrant admits one process: authors run one at a time in local mode, in the one-slot pool
    assert dag.get_task("featurize_author").max_active_tis_per_dagrun == 1
    assert dag.get_task("featurize_author").pool == "twin_embedded_qdrant"
    assert publish.pool == "twin_embedded_qdrant"
    assert dag.get_task("list_authors").pool == "default_pool"


def test_plan_authors_builds_one_command_per_author(dag) -> None:
    plan = dag.get_task("plan_authors").python_callable
    listed = {"step": "warehouse.authors", "authors": ["Zoe Ng", "Ada Quillfeather"], "count": 2}
    assert plan(listed, {"full": False}) == [
        ["features", "run", "--author", "Ada Quillfeather"],
        ["features", "run", "--author", "Zoe Ng"],
    ]
    assert plan(listed, {"full": True})[0][-1] == "--full"
    assert plan(None, {}) == []


@pytest.mark.slow
@pytest.mark.skipif(not TWIN.exists(), reason="the twin_core environment (.venv) is not built")
def test_dag_runs_locally(dag, twin_env, run_dag, twin, write_backup) -> None:
    backup = write_backup([f"Post {i}: idempotent batch jobs overwrite partitions, never append." for i in range(3)])
    env = twin_env()
    twin(env, "warehouse", "import", str(backup))
    run, states = run_dag(dag)
    assert run.state == "success", states
    assert states[("featurize_author", 0)] == "success"
    assert states[("sync_and_publish", -1)] == "success"
    # the data really landed: a second, incremental run has nothing to do
    result = twin(env, "features", "run")
    assert result["points"] == 3
    assert result["processed"] == 0
    assert result["unchanged"] == 3
