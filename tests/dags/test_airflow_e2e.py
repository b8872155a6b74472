"""End to end under a real Airflow: `make airflow`'s launcher (scripts/airflow_local.py) starts the API
server, scheduler, DAG processor and triggerer with a throw-away AIRFLOW_HOME and TWIN_HOME; the API
server on a 127.0.0.1 port the launcher picks (``--port 0``) and prints (``Airflow is up: URL``).
Through Airflow's REST API (/api/v2, bearer token as a client gets it) the test triggers twin_etl with
one author and two links (the fixture site on 127.0.0.1 and the sample git repository), waits for it,
reads its task logs, sees twin_features queued by the raw Asset and succeed, and finds the
documents and the points in the stores. A weekly backfill (no links) then runs and starts no
twin_features. The run counts are checked once no more runs can come (every run that could emit the
Asset finished, the Asset's events each consumed, the backfill complete per Airflow). A headless
Chromium logs into the UI, reads twin_etl's docs and trigger form, waits for the triggered run's graph
with its task states and screenshots it (to docs/img/ with TWIN_REFRESH_DOCS_IMG=1).

Only twin_etl and twin_features are unpaused: other DAGs in dags/ stay paused and are ignored.
Everything started is stopped in the fixture's `finally`, also on failure (the launcher leads its own
process group, which is killed at the end whatever happened).
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
LAUNCHER = REPO_ROOT / "scripts" / "airflow_local.py"
TWIN = REPO_ROOT / ".venv" / "bin" / "twin"
TWIN_PY = REPO_ROOT / ".venv" / "bin" / "python"
SITE_SERVER = REPO_ROOT / "tests" / "etl" / "fixtures" / "site_server.py"
UI_CHECK = Path(__file__).with_name("ui_check.py")
SCREENSHOT = REPO_ROOT / "docs" / "img" / "twin_etl_graph.png"
AUTHOR = "Ada Quillfeather"
OUR_DAGS = ("twin_etl", "twin_features")
CHROMIUM = Path(os.environ.get("TWIN_BROWSER_BINARY", "/usr/bin/chromium"))
CHROMEDRIVER = Path(os.environ.get("TWIN_BROWSER_DRIVER", "/usr/bin/chromedriver"))
RAW_ASSET = "twin://warehouse/raw"
RUNS: dict[str, str] = {}  # the triggered twin_etl run, whose graph the UI test photographs
DONE = ("success", "failed")
UP = re.compile(r"Airflow is up: (http://127\.0\.0\.1:\d+)$")

pytestmark = [
    pytest.mark.slow,
    # start-up is bounded by the launcher's own limits (setup, API server, execution API warm-up); the waits
    # below bound each later stage for a loaded 2-core machine (parse 180 s, each run 600 s); pytest-timeout
    # counts the module fixture's start-up in the first test, so the suite's 900 s would cut first
    pytest.mark.timeout(2400),
    pytest.mark.skipif(not TWIN.exists(), reason="the twin_core environment (.venv) is not built"),
]


class LauncherOutput:
    """Copies the launcher's output to a log file and finds its ``Airflow is up: URL`` line."""

    def __init__(self, proc: subprocess.Popen, path: Path) -> None:
        self.proc, self.path = proc, path
        self.url: str | None = None
        self.settled = threading.Event()  # the URL line came, or the launcher's output ended (it exited)
        self.thread = threading.Thread(target=self._pump, daemon=True)
        self.thread.start()

    def _pump(self) -> None:
        with self.path.open("w") as log:
            for line in self.proc.stdout:
                log.write(line)
                log.flush()
                match = UP.search(line.strip())
                if match and self.url is None:
                    self.url = match[1]
                    self.settled.set()
        self.settled.set()

    def wait_url(self) -> str:
        """Waits as long as the launcher does: it gives up (and exits) past its own limits."""
        self.settled.wait()
        assert self.url, f"the launcher exited ({self.proc.wait()}) before Airflow was up:\n{self.path.read_text()}"
        return self.url


def _load(name: str, path: Path) -> Any:
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


@dataclass
class Airflow:
    url: str
    home: Path
    twin_home: Path
    password: str
    client: httpx.Client
    env_file: Path

    def get(self, path: str, **params: Any) -> Any:
        for attempt in range(3):  # a busy 2-core machine can stall the single API worker for a while
            try:
                resp = self.client.get(f"/api/v2{path}", params=params)
                break
            except httpx.TimeoutException:
                if attempt == 2:
                    raise
        resp.raise_for_status()
        return resp.json()

    def wait_for(self, what: str, check, timeout: float, every: float = 2.0) -> Any:  # noqa: ANN001
        deadline = time.monotonic() + timeout
        while True:
            value = check()
            if value:
                return value
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}\n{self.diagnostics()}")
            time.sleep(every)

    def runs(self, dag_id: str) -> list[dict]:
        return self.get(f"/dags/{dag_id}/dagRuns", order_by="run_after")["dag_runs"]

    def task_states(self, dag_id: str, run_id: str) -> dict[tuple[str, int], str | None]:
        tis = self.get(f"/dags/{dag_id}/dagRuns/{run_id}/taskInstances")["task_instances"]
        return {(t["task_id"], t["map_index"]): t["state"] for t in tis}

    def wait_run(self, dag_id: str, run_id: str, timeout: float) -> dict:
        def done() -> dict | None:
            run = self.get(f"/dags/{dag_id}/dagRuns/{run_id}")
            return run if run["state"] in DONE else None

        run = self.wait_for(f"{dag_id} run {run_id}", done, timeout)
        assert run["state"] == "success", f"{dag_id} {run_id}: {self.task_states(dag_id, run_id)}\n{self.diagnostics()}"
        return run

    def task_log(self, dag_id: str, run_id: str, task_id: str, map_index: int = -1) -> list[str]:
        """A finished task instance's log (its last try) as the UI reads it, after checking its one source:
        the task's log file in AIRFLOW_HOME (no log server was asked)."""
        ti_path = f"/dags/{dag_id}/dagRuns/{run_id}/taskInstances/{task_id}"
        try_number = self.get(ti_path if map_index < 0 else f"{ti_path}/{map_index}")["try_number"]
        resp = self.client.get(
            f"/api/v2{ti_path}/logs/{try_number}",
            params={"map_index": map_index, "full_content": True},
            headers={"Accept": "application/json"},
        )
        resp.raise_for_status()
        events = [m if isinstance(m, str) else str(m.get("event", "")) for m in resp.json()["content"]]
        start, end = events.index("::group::Log message source details"), events.index("::endgroup::")
        # Airflow's default log_filename_template, under the AIRFLOW_HOME every component shares
        mapped = f"/map_index={map_index}" if map_index >= 0 else ""
        own = f"dag_id={dag_id}/run_id={run_id}/task_id={task_id}{mapped}/attempt={try_number}.log"
        assert events[start + 1 : end] == [str(self.home / "logs" / own)], events[: end + 1]
        return events[end + 1 :]

    def asset_events(self, uri: str) -> list[dict]:
        (asset,) = [a for a in self.get("/assets", uri_pattern=uri)["assets"] if a["uri"] == uri]
        return self.get("/assets/events", asset_id=asset["id"], limit=100)["asset_events"]

    def queued_asset_events(self, dag_id: str) -> list[dict]:
        return self.get(f"/dags/{dag_id}/assets/queuedEvents")["queued_events"]

    def diagnostics(self) -> str:
        """The end of every task log and component log, for a failure message."""
        parts = []
        for log in sorted((self.home / "logs").rglob("*.log"), key=lambda p: p.stat().st_mtime)[-8:]:
            text = log.read_text(errors="replace").splitlines()[-15:]
            parts.append(f"--- {log.relative_to(self.home)}\n" + "\n".join(line[:400] for line in text))
        return "\n".join(parts)


@pytest.fixture(scope="module")
def airflow(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Airflow]:
    base = tmp_path_factory.mktemp("airflow-e2e")
    home, twin_home = base / "airflow-home", base / "twin-home"
    env = {k: v for k, v in os.environ.items() if not k.startswith("AIRFLOW")}
    env.update(
        {
            "TWIN_CRAWL_ALLOW_HOSTS": "127.0.0.1",  # the fixture site (SSRF guard)
            "TWIN_CRAWL_TIMEOUT_S": "5",
            "TWIN_LLM_THREADS": "1",
            "OMP_NUM_THREADS": "1",
            "PYTHONIOENCODING": "utf-8",
        }
    )
    # --port 0: the launcher picks the API server's port, and another one if that is taken meanwhile
    cmd = [sys.executable, str(LAUNCHER), "--port", "0", "--home", str(home), "--twin-home", str(twin_home)]
    cmd += ["--paused", "--parallelism", "3", "--refresh-interval", "5"]
    proc = subprocess.Popen(
        cmd,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        encoding="utf-8",
        errors="replace",
        start_new_session=True,
    )
    output = LauncherOutput(proc, base / "launcher.log")
    client = httpx.Client(timeout=60)
    try:
        url = output.wait_url()
        assert proc.poll() is None, "launcher exited:\n" + output.path.read_text()
        client.base_url = url
        password = json.loads((home / "twin-local-secrets.json").read_text())["password"]
        # Token auth as a REST client does it: POST /auth/token, then a bearer token on /api/v2.
        token = client.post("/auth/token", json={"username": "admin", "password": password})
        token.raise_for_status()
        client.headers["Authorization"] = f"Bearer {token.json()['access_token']}"
        yield Airflow(url, home, twin_home, password, client, home / "env.sh")
    finally:
        client.close()
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)  # the launcher stops its components and their children
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=60)
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)  # whatever is left of its process group
        proc.wait(timeout=10)
        output.thread.join()  # the output ends with the launcher (no one else holds its stdout)
        proc.stdout.close()


def test_twin_etl_triggers_twin_features_through_the_rest_api(airflow: Airflow, git_repo: Path, twin) -> None:
    _wait_parsed_then_unpause_ours(airflow)
    run_id, links = _trigger_etl_and_wait(airflow, git_repo)
    _check_etl_tasks_and_logs(airflow, run_id, links)
    features_run = _check_only_our_run_triggered_features(airflow, run_id)
    feature_states = airflow.task_states("twin_features", features_run)
    assert feature_states[("featurize_author", 0)] == "success"
    assert feature_states[("sync_and_publish", -1)] == "success"
    _check_stores(airflow, twin)


def _wait_parsed_then_unpause_ours(airflow: Airflow) -> None:
    """Once twin_etl and twin_features are parsed (no import error, the pool set up), unpause them alone."""

    def parsed() -> bool:
        dags = {d["dag_id"] for d in airflow.get("/dags", limit=100)["dags"]}
        return set(OUR_DAGS) <= dags

    airflow.wait_for("the DAG processor to parse twin_etl and twin_features", parsed, timeout=180)
    assert airflow.get("/importErrors")["import_errors"] == []
    pools = {p["name"]: p["slots"] for p in airflow.get("/pools")["pools"]}
    assert pools["twin_embedded_qdrant"] == 1
    for dag_id in OUR_DAGS:  # every other DAG stays paused
        airflow.client.patch(f"/api/v2/dags/{dag_id}", json={"is_paused": False}).raise_for_status()


def _trigger_etl_and_wait(airflow: Airflow, git_repo: Path) -> tuple[str, list[str]]:
    """Trigger twin_etl with one author and two links (the fixture site's page, the git repository) and
    wait for its success; the site serves until then. Returns the run's id and its links."""
    site = _load("e2e_fixture_site", SITE_SERVER).FixtureServer().start()
    try:
        links = [f"{site.base_url}/substack.html", git_repo.as_uri()]
        created = airflow.client.post(
            "/api/v2/dags/twin_etl/dagRuns",
            json={"logical_date": None, "conf": {"user_full_name": AUTHOR, "links": links}},
        )
        assert created.status_code == 200, created.text
        run_id = created.json()["dag_run_id"]
        RUNS["twin_etl"] = run_id
        airflow.wait_run("twin_etl", run_id, timeout=600)
    finally:
        site.stop()
    return run_id, links


def _check_etl_tasks_and_logs(airflow: Airflow, run_id: str, links: list[str]) -> None:
    states = airflow.task_states("twin_etl", run_id)
    assert states[("crawl", 0)] == "success"
    assert states[("crawl", 1)] == "success"
    assert states[("validate_raw", -1)] == "success"

    # Task logs, as the UI reads them: from the files in the shared AIRFLOW_HOME (no log server runs).
    for map_index, link in enumerate(links):
        crawl_log = airflow.task_log("twin_etl", run_id, "crawl", map_index)
        assert f"running (profile cpu): {TWIN} etl crawl --user {AUTHOR} --link {link}" in crawl_log, crawl_log[-30:]
        assert any(f"INFO twin_core.etl.runner: succeeded {link}: " in line for line in crawl_log), crawl_log[-30:]
        assert any(line.startswith("result: {") for line in crawl_log), crawl_log[-30:]
    validate_log = airflow.task_log("twin_etl", run_id, "validate_raw")
    assert f"running (profile cpu): {TWIN} validate raw" in validate_log, validate_log[-30:]
    for category in ("articles", "repositories"):
        validated = f"INFO twin_core.validation.raw: validate {category}: 1 documents, 0 failing"
        assert any(line.endswith(validated) for line in validate_log), validate_log[-30:]


def _check_only_our_run_triggered_features(airflow: Airflow, run_id: str) -> str:
    """The raw Asset queued twin_features, and nothing else did: the scheduled twin_etl run that unpausing
    creates has no links, so it emits nothing. Counted once no more twin_features run can come: every
    twin_etl run so far finished (none can emit any more), and no Asset event waits for twin_features.
    Returns the one twin_features run's id."""

    def settled() -> list[dict] | None:
        etl = airflow.runs("twin_etl")
        if not any(r["run_type"] == "scheduled" for r in etl) or not all(r["state"] in DONE for r in etl):
            return None
        runs = airflow.runs("twin_features")
        if not runs or not all(r["state"] in DONE for r in runs) or airflow.queued_asset_events("twin_features"):
            return None
        return runs

    runs = airflow.wait_for("twin_etl's runs, then twin_features, to finish", settled, timeout=600)
    assert [(r["run_type"], r["state"]) for r in runs] == [("asset_triggered", "success")], airflow.diagnostics()
    (event,) = airflow.asset_events(RAW_ASSET)
    assert (event["source_dag_id"], event["source_run_id"], event["source_task_id"]) == (
        "twin_etl",
        run_id,
        "validate_raw",
    )
    assert [(r["dag_id"], r["run_id"]) for r in event["created_dagruns"]] == [("twin_features", runs[0]["dag_run_id"])]
    return runs[0]["dag_run_id"]


def _check_stores(airflow: Airflow, twin) -> None:  # noqa: ANN001
    """The author's two documents are in the warehouse, and their points in Qdrant (a second `features
    run` finds nothing to do)."""
    env = {**os.environ, "TWIN_HOME": str(airflow.twin_home), "TWIN_PROGRESS": "0", "HF_HUB_OFFLINE": "1"}
    stats = twin(env, "warehouse", "stats")
    assert stats["categories"]["articles"] == {"total": 1, "quarantined": 0}
    assert stats["categories"]["repositories"] == {"total": 1, "quarantined": 0}
    assert stats["authors"][AUTHOR]["articles"] == 1
    assert stats["authors"][AUTHOR]["repositories"] == 1
    again = twin(env, "features", "run")  # incremental: everything is already in Qdrant
    assert again["processed"] == 0
    assert again["unchanged"] == 2
    assert again["points"] > 2


def test_weekly_backfill_runs_and_emits_nothing_without_links(airflow: Airflow) -> None:
    """The documented backfill command, on this instance (. airflow-home/env.sh)."""

    def emitted() -> list[tuple[int, str]]:
        return [(e["id"], e["source_run_id"]) for e in airflow.asset_events(RAW_ASSET)]

    def features() -> list[tuple[str, str, str]]:
        return [(r["dag_run_id"], r["run_type"], r["state"]) for r in airflow.runs("twin_features")]

    events_before, features_before = emitted(), features()
    assert all(state in DONE for _, _, state in features_before), features_before
    cmd = "airflow backfill create --dag-id twin_etl --from-date 2026-01-04 --to-date 2026-01-11 --max-active-runs 1"
    env = {k: v for k, v in os.environ.items() if not k.startswith("AIRFLOW")}  # only what env.sh sets
    out = subprocess.run(
        ["bash", "-c", f". {airflow.env_file} && {cmd}"], env=env, capture_output=True, text=True, timeout=300
    )
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-2000:]

    # The backfill created its runs; Airflow marks it complete once none is queued or running. Any other
    # twin_etl run (a scheduled one, should a week end meanwhile) must finish too: then none can emit.
    def completed() -> dict | None:
        (backfill,) = airflow.get("/backfills", dag_id="twin_etl")["backfills"]
        finished = all(r["state"] in DONE for r in airflow.runs("twin_etl"))
        return backfill if backfill["completed_at"] and finished else None

    backfill = airflow.wait_for("the backfill and every twin_etl run to finish", completed, timeout=600)
    assert (backfill["from_date"][:10], backfill["to_date"][:10]) == ("2026-01-04", "2026-01-11")
    runs = [r for r in airflow.runs("twin_etl") if r["run_type"] == "backfill"]
    assert sorted((r["logical_date"][:10], r["state"]) for r in runs) == [
        ("2026-01-04", "success"),
        ("2026-01-11", "success"),
    ], airflow.diagnostics()
    for run in runs:
        states = airflow.task_states("twin_etl", run["dag_run_id"])
        assert states[("validate_raw", -1)] == "skipped"  # nothing crawled, nothing emitted
    # Finished runs emit no more: the raw Asset has no new event, so no twin_features run is queued or can come.
    assert emitted() == events_before
    assert airflow.queued_asset_events("twin_features") == []
    assert features() == features_before


@pytest.mark.browser
@pytest.mark.skipif(
    not (CHROMIUM.exists() and CHROMEDRIVER.exists()), reason="apt-get install chromium chromium-driver"
)
@pytest.mark.skipif(not TWIN_PY.exists(), reason="Selenium lives in the twin_core environment (.venv)")
def test_ui_login_trigger_form_docs_and_graph(airflow: Airflow, tmp_path: Path) -> None:
    shot = tmp_path / "graph.png"
    run_id = RUNS.get("twin_etl", "")  # the triggered run, when the first test got that far
    task_ids = sorted(t["task_id"] for t in airflow.get("/dags/twin_etl/tasks")["tasks"])
    states: dict[str, str] = {}
    if run_id:  # what the run's graph must show: each task's state (a mapped task's, one for all its copies)
        by_task: dict[str, list[str | None]] = {}
        for (task_id, _), state in airflow.task_states("twin_etl", run_id).items():
            by_task.setdefault(task_id, []).append(state)
        assert all(len(set(s)) == 1 for s in by_task.values()), by_task
        states = {task_id: s[0] for task_id, s in by_task.items()}
    cmd = [str(TWIN_PY), str(UI_CHECK), airflow.url, "admin", airflow.password, str(shot), run_id, json.dumps(states)]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    seen = json.loads(out.stdout.strip().splitlines()[-1])
    assert seen["logged_in"] is True
    assert seen["trigger_form_fields"] == ["config", "links", "user_full_name"]
    assert seen["docs"].startswith("Dag Documentation\ntwin_etl — collect an author's writing into the warehouse\n")
    assert sorted(seen["graph_nodes"]) == task_ids
    if run_id:  # each node: its label (a mapped task's with its number of copies), operator and state
        labels = {t: f"{t} [{len(by_task[t])}]" if t == "crawl" else t for t in task_ids}
        assert {t: lines[0] for t, lines in seen["graph_nodes"].items()} == labels
        assert seen["graph_states"] == states
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    if os.environ.get("TWIN_REFRESH_DOCS_IMG") == "1":  # the README's graph; a test run leaves the tree clean
        SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(shot, SCREENSHOT)
