"""twin_features: scheduled on the raw Asset, one featurize task per author, publishes both feature
Assets; and it runs locally end to end (dag.test with TWIN_EXECUTION=local on a tiny warehouse)."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
TWIN = REPO_ROOT / ".venv" / "bin" / "twin"


@pytest.fixture
def dag(local_dagbag):
    return local_dagbag.dags["twin_features"]


def test_schedule_graph_and_outlets(dag) -> None:
    assert type(dag.timetable).__name__ == "AssetTriggeredTimetable"
    assert "twin://warehouse/raw" in str(dag.timetable.asset_condition)
    edges = {t.task_id: sorted(t.downstream_task_ids) for t in dag.tasks}
    assert edges == {
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
def test_dag_runs_locally(dag, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    home = tmp_path / "twin"
    backup = tmp_path / "backup"
    backup.mkdir()
    author = {"_id": "u1", "first_name": "Ada", "last_name": "Quillfeather"}
    posts = [
        {
            "content": {"Content": f"Post {i}: idempotent batch jobs overwrite partitions, never append."},
            "platform": "linkedin",
            "author_id": "u1",
            "author_full_name": "Ada Quillfeather",
            "link": f"https://www.linkedin.com/feed/update/urn:li:activity:{i}/",
        }
        for i in range(3)
    ]
    (backup / "UserDocument.json").write_text(json.dumps([author]))
    (backup / "PostDocument.json").write_text(json.dumps(posts))
    env = {**os.environ, "TWIN_HOME": str(home), "HF_HUB_OFFLINE": "1", "TWIN_PROGRESS": "0"}
    subprocess.run([str(TWIN), "warehouse", "import", str(backup)], check=True, env=env, capture_output=True)
    monkeypatch.setenv("TWIN_HOME", str(home))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")

    from airflow.utils import db

    db.initdb()
    monkeypatch.setattr(dag, "deadline", None)  # Airflow 3.3.2: dag.test() + deadline crashes (#73428)
    run = dag.test()
    states = {(ti.task_id, ti.map_index): ti.state for ti in run.get_task_instances()}
    assert run.state == "success", states
    assert states[("featurize_author", 0)] == "success"
    assert states[("sync_and_publish", -1)] == "success"
    # the data really landed: a second, incremental run has nothing to do
    out = subprocess.run([str(TWIN), "features", "run"], env=env, capture_output=True, text=True)
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result["points"] == 3
    assert result["processed"] == 0
    assert result["unchanged"] == 3
