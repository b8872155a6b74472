"""twin_features: scheduled on the raw Asset, one featurize task per author, publishes both feature
Assets when a document was processed or deleted (never for a no-op run); and it runs locally end to end
(dag.test with TWIN_EXECUTION=local on a tiny warehouse)."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from airflow.sdk.exceptions import AirflowSkipException
from support.dags import asset_condition, edges

REPO_ROOT = Path(__file__).resolve().parents[2]
TWIN = REPO_ROOT / ".venv" / "bin" / "twin"


DAG_ID = "twin_features"  # the `dag` fixture (conftest.py) parses it in local mode


def test_schedule_graph_and_outlets(dag) -> None:
    assert "twin://warehouse/raw" in asset_condition(dag)
    assert edges(dag) == {
        "list_authors": ["plan_authors"],
        "plan_authors": ["featurize_author"],
        "featurize_author": ["check_features", "sync_and_publish"],
        "sync_and_publish": ["check_features"],
        "check_features": [],
    }
    publish = dag.get_task("sync_and_publish")
    assert publish.outlets == [] and publish.arguments == ["features", "run"]
    check = dag.get_task("check_features")
    assert {a.uri for a in check.outlets} == {"twin://features/cleaned", "twin://features/embedded"}
    assert check.trigger_rule == "none_failed"  # also after a run with no author to map over
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


def _result(processed: int = 0, deleted: int = 0, unchanged: int = 3) -> dict:
    """The JSON result of `twin features run` (the counts that matter here)."""
    status = {"status": "unchanged"} if processed == 0 and deleted == 0 else {}
    return {"step": "features.run", "processed": processed, "unchanged": unchanged, "deleted": deleted, **status}


@pytest.mark.parametrize(
    ("per_author", "last", "changes"),
    [
        ([_result(processed=2), _result()], _result(), {"processed": 2, "deleted": 0}),
        ([_result(), _result(deleted=1)], _result(), {"processed": 0, "deleted": 1}),
        ([_result(processed=1)], _result(deleted=4), {"processed": 1, "deleted": 4}),
        (None, _result(deleted=4), {"processed": 0, "deleted": 4}),  # no author left: a removed author's documents
    ],
)
def test_the_feature_assets_are_emitted_when_a_document_changed(dag, per_author, last, changes: dict) -> None:
    assert dag.get_task("check_features").python_callable(per_author, last) == changes


@pytest.mark.parametrize(
    ("per_author", "last"), [([_result(), _result(unchanged=0)], _result()), (None, _result()), ([None], None)]
)
def test_a_run_that_changed_nothing_emits_nothing(dag, per_author, last) -> None:
    """Every document unchanged: skipped, so twin_datasets does not start for nothing."""
    with pytest.raises(AirflowSkipException, match="no document processed or deleted"):
        dag.get_task("check_features").python_callable(per_author, last)


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
    assert states[("check_features", -1)] == "success"  # 3 documents processed: both Assets emitted
    check = next(ti for ti in run.get_task_instances() if ti.task_id == "check_features")
    assert check.xcom_pull(task_ids="check_features") == {"processed": 3, "deleted": 0}
    assert _asset_events(run.run_id) == {"twin://features/cleaned": 1, "twin://features/embedded": 1}
    # the data really landed: a second, incremental run has nothing to do
    result = twin(env, "features", "run")
    assert result["points"] == 3
    assert result["processed"] == 0
    assert result["unchanged"] == 3
    # and a DAG run with nothing new emits nothing
    again, states = run_dag(dag, logical_date=run.logical_date + timedelta(minutes=1))
    assert again.state == "success", states
    assert states[("featurize_author", 0)] == "success" and states[("sync_and_publish", -1)] == "success"
    assert states[("check_features", -1)] == "skipped"
    assert _asset_events(again.run_id) == {}


def _asset_events(run_id: str) -> dict[str, int]:
    """How many events each Asset got from the DAG run ``run_id`` (the test's metadata DB)."""
    from airflow.models.asset import AssetEvent, AssetModel
    from airflow.utils.session import create_session
    from sqlalchemy import func, select

    with create_session() as session:
        rows = session.execute(
            select(AssetModel.uri, func.count()).join(AssetEvent, AssetEvent.asset_id == AssetModel.id)
            .where(AssetEvent.source_run_id == run_id).group_by(AssetModel.uri)
        )  # fmt: skip
        return dict(rows.all())
