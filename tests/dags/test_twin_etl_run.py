"""twin_etl: the trigger form/config planning, and a local end-to-end run (dag.test, TWIN_EXECUTION=local)
crawling the fixture site and a local git repository into an embedded warehouse under a tmp TWIN_HOME.

Runs in the Airflow environment: twin_core is never imported here; the steps run `.venv/bin/twin`."""

from __future__ import annotations

import importlib.util
import os
import re
import sys
from pathlib import Path

import pytest
from support import SAMPLE_DIR

REPO_ROOT = Path(__file__).resolve().parents[2]
TWIN = Path(os.environ.get("TWIN_BIN", REPO_ROOT / ".venv" / "bin" / "twin"))
SITE_SERVER = REPO_ROOT / "tests" / "etl" / "fixtures" / "site_server.py"
SAMPLE_REPO = SAMPLE_DIR / "repos" / "tiny-pipeline"
DAGS = REPO_ROOT / "dags"


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
    assert dag.get_task("plan_crawls").downstream_task_ids == {"crawl", "check_crawls"}
    assert dag.get_task("crawl").downstream_task_ids == {"check_changes", "check_crawls"}
    assert dag.get_task("check_changes").downstream_task_ids == {"validate_raw"}
    assert dag.get_task("check_changes").trigger_rule == "all_done"  # failed links do not stop the rest
    # a failed plan or crawl fails the run, whatever validation does with the links that succeeded
    assert dag.get_task("check_crawls").trigger_rule == "one_failed"
    assert dag.get_task("check_crawls").downstream_task_ids == set()
    validate = dag.get_task("validate_raw")
    assert {a.uri for a in validate.outlets} == {"twin://warehouse/raw"}
    assert dag.timetable.expression == "0 0 * * 0"  # schedule="@weekly", as Airflow 3.3 stores it


def test_form_has_no_demo_author_and_validates_the_config_name(dag) -> None:
    from airflow.sdk.exceptions import ParamValidationError

    assert dag.params["user_full_name"] is None  # no prefilled author to file someone's writing under
    assert dag.params.validate() == {"user_full_name": None, "links": [], "config": None}
    config = dag.params.get_param("config")
    for good in (None, "", "ada_quillfeather", "team-2.yaml"):
        assert config.resolve(good) == good
    for bad in ("../etc/passwd", "/abs/team", "configs/etl/team", " team"):
        with pytest.raises(ParamValidationError):
            config.resolve(bad)


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
    # the form may name the config's author, case and spacing aside (twin_core's user id ignores them)
    cmds = plan({"user_full_name": " zoe  NG ", "links": ["https://a.dev/x"], "config": "team"}, manual=True)
    assert cmds == [
        ["etl", "crawl", "--user", "Zoe Ng", "--link", link, "--setting", "crawl_max_bytes=1000"]
        for link in ("https://z.dev/1", "https://a.dev/x")
    ]
    assert plan({"links": ["https://a.dev/x"], "config": "team"})[1][3] == "Zoe Ng"  # the config's author
    assert plan({"config": "team"}, manual=True)[0][3] == "Zoe Ng"
    # a scheduled or backfill run (an empty form) crawls the default config
    assert plan({"user_full_name": None, "links": [], "config": None}, default_config="team")[0][3] == "Zoe Ng"
    assert plan({"user_full_name": "Ada Q", "links": ["https://a.dev/x"]}, manual=True)[0][3] == "Ada Q"


def test_plan_fails_at_once_on_bad_input(etl_module, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Bad form input or config raises AirflowFailException (no retry) saying what to fix."""
    from airflow.sdk.exceptions import AirflowFailException

    plan = etl_module.plan
    (tmp_path / "team.yaml").write_text("user_full_name: Zoe Ng\nlinks: [https://z.dev/1]\n")
    (tmp_path / "anon.yaml").write_text("links: [https://z.dev/1]\n")
    (tmp_path / "empty.yaml").write_text("user_full_name: Zoe Ng\n")
    (tmp_path / "flat.yaml").write_text("user_full_name: Zoe Ng\nlinks: https://z.dev/1\n")
    (tmp_path / "list.yaml").write_text("- https://z.dev/1\n")
    monkeypatch.setenv("TWIN_ETL_CONFIG_DIR", str(tmp_path))
    author_missing = "no author for 1 link(s): fill `user_full_name` in the trigger form"
    cases = [
        ({"links": ["https://a.dev/x"]}, None, f"^{re.escape(author_missing)}"),
        ({"user_full_name": "  ", "links": ["https://a.dev/x"]}, None, f"^{re.escape(author_missing)}"),
        ({"config": "anon"}, None, r"^no author for 1 link\(s\): ETL config 'anon' sets no user_full_name; fill"),
        ({"user_full_name": "Ada Q", "config": "../etc/passwd"}, None, r"^invalid config name '\.\./etc/passwd'"),
        ({"user_full_name": "Ada Q", "config": "missing"}, None, r"^ETL config 'missing' not found in .*"),
        ({"config": "empty"}, None, r"^ETL config 'empty' lists no links and the form has none"),
        ({"config": "flat"}, None, r"flat\.yaml: links must be a list of URLs$"),
        ({"config": "list"}, None, r"list\.yaml: expected a mapping"),
        ({}, "gone", r"^Airflow Variable twin_etl_default_config: ETL config 'gone' not found"),
    ]
    for params, default_config, message in cases:
        with pytest.raises(AirflowFailException, match=message):
            plan(params, default_config=default_config)
    with pytest.raises(AirflowFailException, match=r"\(available: anon, empty, flat, list, team\)$"):
        plan({"config": "missing"})
    # the weekly run: no links, no config, no author -> nothing to crawl, not an error
    assert plan({}) == []
    assert plan({"user_full_name": None, "links": [], "config": None}) == []


def test_plan_refuses_a_manual_run_that_would_misfile_or_crawl_nothing(
    etl_module, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The form's author must be the config's (else its links would be filed under the config's author),
    and a manual run must name links or a config (else it ends green having crawled nothing)."""
    from airflow.sdk.exceptions import AirflowFailException

    plan = etl_module.plan
    (tmp_path / "ada_quillfeather.yaml").write_text("user_full_name: Ada Quillfeather\nlinks: [https://a.dev/1]\n")
    monkeypatch.setenv("TWIN_ETL_CONFIG_DIR", str(tmp_path))
    bob = {"user_full_name": "Bob Builder", "links": ["https://bob.dev/post"], "config": "ada_quillfeather"}
    mismatch = (
        "the form names the author 'Bob Builder' but ETL config 'ada_quillfeather' crawls 'Ada Quillfeather''s "
        "links: leave `user_full_name` empty to crawl the config as 'Ada Quillfeather', or leave `config` empty "
        "to crawl the form's links as 'Bob Builder'; nothing was crawled"
    )
    nothing = "nothing to crawl for 'Bob Builder': fill `links` in the trigger form, name a `config` from "
    unset = "or set the Airflow Variable twin_etl_default_config; nothing was crawled$"
    variable_mismatch = r"^Airflow Variable twin_etl_default_config: the form names the author 'Bob Builder' but"
    cases = [
        (bob, None, True, f"^{re.escape(mismatch)}$"),
        ({**bob, "links": []}, None, True, f"^{re.escape(mismatch)}$"),
        # a name alone: nothing to crawl, or the default config, which must be that author's
        ({"user_full_name": "Bob Builder"}, None, True, f"^{re.escape(nothing)}.*{unset}"),
        ({"user_full_name": "Bob Builder"}, None, False, f"^{re.escape(nothing)}.*{unset}"),
        ({"user_full_name": "Bob Builder", "links": [], "config": None}, "ada_quillfeather", True, variable_mismatch),
        ({"user_full_name": "Bob Builder"}, "ada_quillfeather", False, variable_mismatch),
        # an empty trigger form with no default config: a manual run says so instead of ending green
        ({}, None, True, rf"^nothing to crawl: fill `links` in the trigger form, name a `config`.*{unset}"),
    ]
    for params, default_config, manual, message in cases:
        with pytest.raises(AirflowFailException, match=message):
            plan(params, default_config=default_config, manual=manual)
    # a scheduled run, or the trigger form left empty: the default config; a scheduled run without one: nothing
    for manual in (False, True):
        assert plan({}, default_config="ada_quillfeather", manual=manual) == [
            ["etl", "crawl", "--user", "Ada Quillfeather", "--link", "https://a.dev/1"]
        ]
    assert plan({"user_full_name": " ada  QUILLFEATHER"}, default_config="ada_quillfeather", manual=True) == [
        ["etl", "crawl", "--user", "Ada Quillfeather", "--link", "https://a.dev/1"]
    ]
    assert plan({}) == []


def test_plan_crawls_tells_a_manual_run_from_a_scheduled_one(dag, monkeypatch: pytest.MonkeyPatch) -> None:
    from types import SimpleNamespace

    from airflow.sdk import Variable
    from airflow.sdk.exceptions import AirflowFailException
    from airflow.utils.types import DagRunType

    monkeypatch.setattr(Variable, "get", lambda key, default=None: None)
    plan_crawls = dag.get_task("plan_crawls").python_callable
    form = {"user_full_name": "Bob Builder", "links": [], "config": None}
    with pytest.raises(AirflowFailException, match="^nothing to crawl for 'Bob Builder'"):
        plan_crawls(form, dag_run=SimpleNamespace(run_type=DagRunType.MANUAL))
    empty = {"user_full_name": None, "links": [], "config": None}
    with pytest.raises(AirflowFailException, match="^nothing to crawl: "):
        plan_crawls(empty, dag_run=SimpleNamespace(run_type=DagRunType.MANUAL))
    for run_type in (DagRunType.SCHEDULED, DagRunType.BACKFILL_JOB):
        assert plan_crawls(empty, dag_run=SimpleNamespace(run_type=run_type)) == []


def test_documented_backfills_run_one_window_at_a_time() -> None:
    """`airflow backfill create` runs up to 10 runs at once unless told otherwise (the DAG's max_active_runs
    does not bound a backfill): every documented backfill command passes --max-active-runs 1."""
    sources = [REPO_ROOT / "README.md", *sorted((REPO_ROOT / "docs").glob("*.md")), *sorted(DAGS.glob("*.py"))]
    commands = []
    for source in sources:
        text = " ".join(source.read_text(encoding="utf-8").split())
        commands += [(source.name, c.strip()) for c in re.findall(r"airflow backfill create (--dag-id [^`#]*)", text)]
    assert {"usage.md", "twin_etl.py", "twin_monitoring.py"} <= {name for name, _ in commands}
    assert [(name, c) for name, c in commands if not re.search(r"--max-active-runs 1\b", c)] == []


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
    assert states[("check_crawls", -1)] == "skipped"  # nothing failed
    assert "twin_core" not in sys.modules

    stats = twin(env, "warehouse", "stats")
    assert stats["categories"]["articles"] == {"total": 2, "quarantined": 0}
    assert stats["categories"]["repositories"] == {"total": 1, "quarantined": 0}
    assert stats["authors"]["Ada Quillfeather"]["articles"] == 2


@pytest.fixture
def alerts(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The texts of the failure alerts a run sends to the webhook (captured, nothing is posted)."""
    from twin_ops import notifiers

    sent: list[str] = []
    monkeypatch.setenv("TWIN_ALERT_WEBHOOK_URL", "http://127.0.0.1:9/unused")
    monkeypatch.setattr(notifiers, "post_webhook", lambda url, payload: sent.append(payload["text"]) or True)
    return sent


def _tries(run) -> dict[tuple[str, int], int]:  # noqa: ANN001
    return {(ti.task_id, ti.map_index): ti.try_number for ti in run.get_task_instances()}


def test_links_without_an_author_fail_the_run_at_once(dag, twin_env, run_dag, alerts) -> None:
    """No author: plan_crawls fails on its first try (no retry), nothing is crawled, the run fails."""
    twin_env(TWIN_BIN="/nonexistent/twin")  # no step may run
    run, states = run_dag(dag, run_conf={"links": ["file:///nonexistent/repo"]})
    assert run.state == "failed", states
    assert states == {
        ("plan_crawls", -1): "failed",
        ("crawl", -1): "upstream_failed",
        ("check_changes", -1): "success",  # all_done: it runs, finds no change
        ("validate_raw", -1): "skipped",
        ("check_crawls", -1): "failed",
    }
    assert _tries(run)[("plan_crawls", -1)] == 1
    assert alerts == [
        f"twin_etl.plan_crawls failed (run {run.run_id}): no author for 1 link(s): fill `user_full_name` in the "
        "trigger form with the full name of the person who wrote them (their documents are stored under that "
        "name); nothing was crawled",
        f"twin_etl.check_crawls failed (run {run.run_id}): plan_crawls or a crawl failed (their logs and alerts "
        "give the reasons); the links that succeeded are still validated",
    ]


@pytest.mark.slow
@pytest.mark.skipif(not TWIN.exists(), reason="the twin_core environment (.venv) is not built")
def test_a_run_whose_crawls_all_fail_ends_failed(dag, twin_env, run_dag, tmp_path: Path, alerts) -> None:
    twin_env(TWIN_BIN=str(TWIN))
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "a.md").write_text("not a repository\n")
    links = [(tmp_path / "notes").as_uri(), (tmp_path / "missing").as_uri()]  # bad input: exit code 3
    run, states = run_dag(dag, run_conf={"user_full_name": "Ada Quillfeather", "links": links})
    assert run.state == "failed", states
    assert states == {
        ("plan_crawls", -1): "success",
        ("crawl", 0): "failed",
        ("crawl", 1): "failed",
        ("check_changes", -1): "success",  # it ran and found no change
        ("validate_raw", -1): "skipped",
        ("check_crawls", -1): "failed",
    }
    assert _tries(run)[("crawl", 0)] == _tries(run)[("crawl", 1)] == 1  # bad input is not retried
    # one alert per failed task (in the order they ran), naming the mapped instance and the reason
    by_task = {text.split(" failed (run ")[0]: text for text in alerts}
    assert sorted(by_task) == ["twin_etl.check_crawls", "twin_etl.crawl[0]", "twin_etl.crawl[1]"], alerts
    assert len(alerts) == 3
    assert by_task["twin_etl.crawl[0]"] == (
        f"twin_etl.crawl[0] failed (run {run.run_id}): `twin etl crawl --user Ada Quillfeather --link {links[0]}` "
        f"failed (bad input, exit code 3, not retried): {links[0]}: not_a_repository: {tmp_path / 'notes'} is a "
        "folder but not a git repository (no .git inside); run `git init` and commit, or link the repository itself"
    )
    assert by_task["twin_etl.crawl[1]"] == (
        f"twin_etl.crawl[1] failed (run {run.run_id}): `twin etl crawl --user Ada Quillfeather --link {links[1]}` "
        f"failed (bad input, exit code 3, not retried): {links[1]}: git: repository {tmp_path / 'missing'} does "
        "not exist"
    )


@pytest.mark.slow
@pytest.mark.skipif(not TWIN.exists(), reason="the twin_core environment (.venv) is not built")
def test_a_partly_failed_run_validates_the_good_links_and_ends_failed(dag, twin_env, run_dag, twin, git_repo) -> None:
    from airflow import settings
    from airflow.models.asset import AssetEvent, AssetModel
    from sqlalchemy import select

    env = twin_env(TWIN_BIN=str(TWIN))
    links = [git_repo.as_uri(), (git_repo.parent / "missing").as_uri()]
    run, states = run_dag(dag, run_conf={"user_full_name": "Ada Quillfeather", "links": links})
    assert run.state == "failed", states
    assert states == {
        ("plan_crawls", -1): "success",
        ("crawl", 0): "success",
        ("crawl", 1): "failed",
        ("check_changes", -1): "success",
        ("validate_raw", -1): "success",  # the good link's documents are validated ...
        ("check_crawls", -1): "failed",  # ... and the run still fails
    }
    query = select(AssetEvent).join(AssetModel, AssetEvent.asset_id == AssetModel.id)
    query = query.where(AssetModel.uri == "twin://warehouse/raw", AssetEvent.source_run_id == run.run_id)
    assert len(list(settings.Session().scalars(query))) == 1  # the raw Asset is still emitted
    assert twin(env, "warehouse", "stats")["categories"]["repositories"] == {"total": 1, "quarantined": 0}


@pytest.mark.slow
@pytest.mark.skipif(not TWIN.exists(), reason="the twin_core environment (.venv) is not built")
def test_a_crawl_a_retry_may_fix_is_retried_and_bad_input_is_not(dag, twin_env, run_dag, alerts) -> None:
    """A link answering 503 fails its crawl with exit code 4: retried (here once, at once), then it pages as
    retryable; a 404 is bad input (exit code 3): one try."""
    from datetime import timedelta

    twin_env(TWIN_BIN=str(TWIN), TWIN_CRAWL_ALLOW_HOSTS="127.0.0.1", TWIN_CRAWL_BACKOFF_S="0.05")
    crawl = dag.get_task("crawl")
    crawl.retries, crawl.retry_delay, crawl.retry_exponential_backoff = 1, timedelta(0), False  # no waiting
    site = _load("twin_etl_fixture_site", SITE_SERVER).FixtureServer().start()
    try:
        links = [f"{site.base_url}/status/503", f"{site.base_url}/status/404"]
        run, states = run_dag(dag, run_conf={"user_full_name": "Ada Quillfeather", "links": links})
    finally:
        site.stop()
    assert run.state == "failed", states
    assert (states[("crawl", 0)], states[("crawl", 1)]) == ("failed", "failed")
    assert (_tries(run)[("crawl", 0)], _tries(run)[("crawl", 1)]) == (2, 1)
    by_task = {text.split(" failed (run ")[0]: text for text in alerts}
    command = "`twin etl crawl --user Ada Quillfeather --link {}`"
    assert by_task["twin_etl.crawl[0]"] == (
        f"twin_etl.crawl[0] failed (run {run.run_id}): {command.format(links[0])} failed (exit code 4, "
        f"retryable): {links[0]}: http_503: {links[0]} answered 503"
    )
    assert by_task["twin_etl.crawl[1]"] == (
        f"twin_etl.crawl[1] failed (run {run.run_id}): {command.format(links[1])} failed (bad input, exit code 3, "
        f"not retried): {links[1]}: http_404: {links[1]} answered 404 Not Found"
    )
