"""twin_etl when a crawl's result never reached Airflow: the crawl stored its documents and exited 0, but its
XCom push failed (or its pod was killed first), so the task is retried and the retry finds the documents
already stored. They still count as created until `validate_raw` has seen them: validation runs and the raw
Asset is emitted; once validated, a later run finds them unchanged and emits nothing.

Runs in the Airflow environment: twin_core is never imported here; the steps run `.venv/bin/twin`."""

from __future__ import annotations

import os
from datetime import timedelta
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
TWIN = Path(os.environ.get("TWIN_BIN", REPO_ROOT / ".venv" / "bin" / "twin"))
DAG_ID = "twin_etl"  # the `dag` fixture (conftest.py) parses it in local mode
AUTHOR = "Ada Quillfeather"


def _raw_events(run_id: str) -> int:
    from airflow import settings
    from airflow.models.asset import AssetEvent, AssetModel
    from sqlalchemy import select

    query = select(AssetEvent).join(AssetModel, AssetEvent.asset_id == AssetModel.id)
    query = query.where(AssetModel.uri == "twin://warehouse/raw", AssetEvent.source_run_id == run_id)
    return len(list(settings.Session().scalars(query)))


def _crawl_totals(run) -> dict:  # noqa: ANN001
    ti = next(ti for ti in run.get_task_instances() if ti.task_id == "check_changes")
    [result] = ti.xcom_pull(task_ids="crawl", map_indexes=[0])
    return {k: v for k, v in result["totals"].items() if k.startswith("documents_")}


@pytest.mark.slow
@pytest.mark.skipif(not TWIN.exists(), reason="the twin_core environment (.venv) is not built")
def test_a_crawl_whose_result_was_lost_is_still_validated(dag, twin_env, run_dag, twin, git_repo) -> None:
    env = twin_env(TWIN_BIN=str(TWIN))
    link = git_repo.as_uri()
    # the crawl task's first try: the document is stored, the result that said so never reached check_changes
    lost = twin(env, "etl", "crawl", "--user", AUTHOR, "--link", link)
    assert lost["totals"]["documents_created"] == 1

    run, states = run_dag(dag, run_conf={"user_full_name": AUTHOR, "links": [link]})  # the retry
    assert run.state == "success", states
    assert _crawl_totals(run) == {"documents_created": 1, "documents_updated": 0, "documents_unchanged": 0}
    assert (states[("check_changes", -1)], states[("validate_raw", -1)]) == ("success", "success")
    assert _raw_events(run.run_id) == 1

    # validated: the next run finds the document unchanged, skips validation and emits nothing
    again, states = run_dag(
        dag, run_conf={"user_full_name": AUTHOR, "links": [link]}, logical_date=run.logical_date + timedelta(minutes=1)
    )
    assert again.state == "success", states
    assert _crawl_totals(again) == {"documents_created": 0, "documents_updated": 0, "documents_unchanged": 1}
    assert states[("validate_raw", -1)] == "skipped"
    assert _raw_events(again.run_id) == 0
    stats = twin(env, "warehouse", "stats")
    assert stats["categories"]["repositories"] == {"total": 1, "quarantined": 0}
