"""twin_etl: the trigger form/config planning, and a local end-to-end run (dag.test, TWIN_EXECUTION=local)
crawling the fixture site and a local git repository into an embedded warehouse under a tmp TWIN_HOME.

Runs in the Airflow environment: twin_core is never imported here; the steps run `.venv/bin/twin`."""

from __future__ import annotations

import importlib.util
import os
import sys
from pathlib import Path

import pytest
from support import SAMPLE_DIR

REPO_ROOT = Path(__file__).resolve().parents[2]
TWIN = Path(os.environ.get("TWIN_BIN", REPO_ROOT / ".venv" / "bin" / "twin"))
SITE_SERVER = REPO_ROOT / "tests" / "etl" / "fixtures" / "site_server.py"
SAMPLE_REPO = SAMPLE_DIR / "repos" / "tiny-pipeline"


def _load(name: str, path: Path):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def etl_module():
    from twin_ops import etl_config

    return etl_config


DAG_ID = "twin_etl"  # the `dag` fixture (conftest.py) parses it in local mode


def test_graph_params_and_outlet(dag) -> None:
    assert set(dag.params) == {"user_full_name", "links", "config"}
    assert dag.get_task("crawl").downstream_task_ids == {"check_changes"}
    assert dag.get_task("check_changes").downstream_task_ids == {"validate_raw"}
    assert dag.get_task("check_changes").trigger_rule == "all_done"  # failed links do not stop the rest
    validate = dag.get_task("validate_raw")
    assert {a.uri for a in validate.outlets} == {"twin://warehouse/raw"}
    assert dag.timetable.expression == "0 0 * * 0"  # schedule="@weekly", as Airflow 3.3 stores it


def test_plan_merges_form_and_config(etl_module, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    plan = etl_module.plan
    assert plan({"user_full_name": "Ada Q", "links": ["https://a.dev/x", " https://a.dev/x ", ""]}) == [
        ["etl", "crawl", "--user", "Ada Q", "--link", "https://a.dev/x"]
    ]
    (tmp_path / "team.yaml").write_text(
        "user_full_name: Zoe Ng\nlinks: [https://z.dev/1]\nsettings: {crawl_max_bytes: 1000}\n"
    )
    monkeypatch.setenv("TWIN_ETL_CONFIG_DIR", str(tmp_path))
    assert etl_module.available_configs() == ["team"]
    cmds = plan({"user_full_name": "Ada Q", "links": ["https://a.dev/x"], "config": "team"})
    assert cmds == [
        ["etl", "crawl", "--user", "Zoe Ng", "--link", link, "--setting", "crawl_max_bytes=1000"]
        for link in ("https://z.dev/1", "https://a.dev/x")
    ]
    assert plan({"user_full_name": "Ada Q", "links": []}, default_config="team")[0][3] == "Zoe Ng"
    assert plan({"user_full_name": "Ada Q", "links": []}) == []
    for bad in ("../etc/passwd", "missing"):
        with pytest.raises(ValueError):
            plan({"user_full_name": "Ada Q", "config": bad})


def test_only_created_or_updated_documents_count_as_a_change(etl_module) -> None:
    def result(created: int, updated: int, unchanged: int) -> dict:
        totals = {"documents_created": created, "documents_updated": updated, "documents_unchanged": unchanged}
        return {"step": "etl.crawl", "status": "ok", "totals": totals}

    changed = etl_module.documents_changed
    assert changed([]) == 0
    assert changed(None) == 0
    assert changed([result(0, 0, 4), None]) == 0  # unchanged links, and a failed one (no XCom)
    assert changed([result(2, 0, 0), result(0, 1, 3)]) == 3


def test_a_run_without_links_skips_validation_and_emits_nothing(dag) -> None:
    check = dag.get_task("check_changes")
    assert check.python_callable([]) is False
    assert check.python_callable([{"totals": {"documents_created": 1}}]) is True


def test_repo_configs_are_valid(etl_module) -> None:
    for name in etl_module.available_configs():
        cfg = etl_module.load_etl_config(name)
        assert cfg["user_full_name"], name
        assert cfg["links"], name


@pytest.mark.slow
@pytest.mark.skipif(not TWIN.exists(), reason="the twin_core environment (.venv) is not built")
def test_dag_crawls_the_fixture_site_locally(dag, twin_env, run_dag, twin, git_repo) -> None:
    assert "twin_core" not in sys.modules
    env = twin_env(TWIN_BIN=str(TWIN), TWIN_CRAWL_ALLOW_HOSTS="127.0.0.1", TWIN_CRAWL_TIMEOUT_S="2")
    site = _load("twin_etl_fixture_site", SITE_SERVER).FixtureServer().start()
    try:
        links = [f"{site.base_url}/substack.html", f"{site.base_url}/blog.html", git_repo.as_uri()]
        run, states = run_dag(dag, run_conf={"user_full_name": "Ada Quillfeather", "links": links})
    finally:
        site.stop()
    assert run.state == "success", states
    assert [states[("crawl", i)] for i in range(3)] == ["success"] * 3
    assert states[("validate_raw", -1)] == "success"
    assert "twin_core" not in sys.modules

    stats = twin(env, "warehouse", "stats")
    assert stats["categories"]["articles"] == {"total": 2, "quarantined": 0}
    assert stats["categories"]["repositories"] == {"total": 1, "quarantined": 0}
    assert stats["authors"]["Ada Quillfeather"]["articles"] == 2
