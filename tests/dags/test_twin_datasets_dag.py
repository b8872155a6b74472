"""twin_datasets: scheduled on the cleaned Asset (or drift), one mapped build per author, emits both
dataset Assets with the version ids only when a version was created; runs locally with dag.test().

Runs in the Airflow environment: twin_core is never imported here; the steps run `.venv/bin/twin`."""

from __future__ import annotations

import subprocess
from pathlib import Path
from types import SimpleNamespace

import pytest
from airflow.sdk.exceptions import AirflowSkipException
from support.dags import asset_condition, edges

REPO_ROOT = Path(__file__).resolve().parents[2]
TWIN = REPO_ROOT / ".venv" / "bin" / "twin"
TWIN_PY = REPO_ROOT / ".venv" / "bin" / "python"

# Cleaned documents written straight into the feature store by the twin_core environment: the build
# reads only cleaned_* (no embedding model needed).
WRITE_CLEANED = """
import sys
from pathlib import Path
from twin_core.domain.documents import Category
from twin_core.features.cleaning import clean_document
from twin_core.features.feature_store import ensure_collections, write_cleaned
from twin_core.settings import load_settings
from twin_core.stores.vectors import open_vector_store
from twin_core.stores.warehouse import open_warehouse
from twin_core.stores.warehouse_io import import_paths

s = load_settings()
wh = open_warehouse(s)
import_paths(wh, [Path(sys.argv[1])])
store = open_vector_store(s)
ensure_collections(store, s.embedding_model_id, 384)
write_cleaned(store, [clean_document(d) for c in Category for d in wh.iter_documents(c)])
store.close()
"""


DAG_ID = "twin_datasets"  # the `dag` fixture (conftest.py) parses it in local mode


def test_schedule_graph_and_outlets(dag) -> None:
    condition = asset_condition(dag)
    assert "twin://features/cleaned" in condition
    assert "twin://monitoring/drift" in condition  # the closed loop (TWIN_RETRAIN_ON_DRIFT defaults on)
    assert edges(dag) == {
        "list_authors": ["plan_builds"],
        "plan_builds": ["build_author"],
        "build_author": ["check_versions"],
        "check_versions": [],
    }
    assert {a.uri for a in dag.get_task("check_versions").outlets} == {
        "twin://datasets/instruct",
        "twin://datasets/preference",
    }


def test_plan_and_publish(dag) -> None:
    plan = dag.get_task("plan_builds").python_callable
    params = {"strategy": "llm", "max_extracts": 5, "max_rejected": 0, "pair_kinds": "other_author"}
    options = ["--strategy", "llm", "--max-extracts", "5", "--max-rejected", "0", "--pair-kinds", "other_author"]
    assert plan({"authors": ["Bo", "Ada Q"]}, params) == [
        ["datasets", "build", "--author", "Ada Q", *options],
        ["datasets", "build", "--author", "Bo", *options],
    ]
    check = dag.get_task("check_versions").python_callable
    unchanged = {
        "authors": [
            {"author_slug": "bo", "versions": {"instruct": "instruct/bo/v0001"}, "created": {"instruct": False}}
        ]
    }
    with pytest.raises(AirflowSkipException):
        check([unchanged], outlet_events={})
    created = {
        "authors": [
            {
                "author_slug": "ada-q",
                "versions": {"instruct": "instruct/ada-q/v0002", "preference": "preference/ada-q/v0001"},
                "created": {"instruct": True, "preference": True},
            }
        ]
    }
    events = {uri: SimpleNamespace(extra=None) for uri in ("i", "p")}
    outlets = {a: events["i" if "instruct" in a.uri else "p"] for a in dag.get_task("check_versions").outlets}
    extra = check([unchanged, created], outlet_events=outlets)
    assert extra == {  # bo's datasets did not change: bo is not trained again
        "versions": {"ada-q": {"instruct": "instruct/ada-q/v0002", "preference": "preference/ada-q/v0001"}}
    }
    assert events["i"].extra == extra
    assert events["p"].extra == extra


@pytest.mark.skipif(not TWIN.exists(), reason="the twin_core environment (.venv) is not built")
def test_dag_runs_locally(dag, twin_env, run_dag, twin, write_backup) -> None:
    text = "Idempotent batch jobs overwrite whole partitions and never append, so a re-run is always safe. "
    backup = write_backup(
        [f"Lesson {i} on topic{i}: " + text * 3 + f"Today it was about topic{i} again." for i in range(4)]
    )
    env = twin_env()
    subprocess.run([str(TWIN_PY), "-c", WRITE_CLEANED, str(backup)], check=True, env=env, capture_output=True)
    run, states = run_dag(dag, run_conf={"strategy": "extractive", "max_extracts": 0, "max_rejected": 0})
    assert run.state == "success", states
    assert states[("build_author", 0)] == "success"
    assert states[("check_versions", -1)] == "success"
    publish = next(ti for ti in run.get_task_instances() if ti.task_id == "check_versions")
    assert publish.xcom_pull(task_ids="check_versions") == {
        "versions": {"ada-quillfeather": {"instruct": "instruct/ada-quillfeather/v0001"}}
    }
    assert twin(env, "datasets", "list")["versions"] == ["instruct/ada-quillfeather/v0001"]
