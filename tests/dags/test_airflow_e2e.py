"""End to end under a real Airflow: `make airflow`'s launcher (scripts/airflow_local.py) starts the API
server, scheduler, DAG processor and triggerer on free 127.0.0.1 ports with a throw-away AIRFLOW_HOME
and TWIN_HOME. Through Airflow's REST API (/api/v2, bearer token as a client gets it) the test triggers
twin_etl with one author and two links (the fixture site on 127.0.0.1 and the sample git repository),
waits for it, sees twin_features queued by the raw Asset and succeed, and finds the documents and the
points in the stores. A weekly backfill (no links) then runs and starts no twin_features. A headless
Chromium logs into the UI, opens twin_etl's trigger form and screenshots the DAG graph (to docs/img/ with
TWIN_REFRESH_DOCS_IMG=1).

Only twin_etl and twin_features are unpaused: other DAGs in dags/ stay paused and are ignored.
Everything started is stopped in the fixture's `finally`, also on failure (the launcher leads its own
process group, which is killed at the end whatever happened).
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
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
RUNS: dict[str, str] = {}  # the triggered twin_etl run, whose graph the UI test photographs

pytestmark = [
    pytest.mark.slow,
    # the waits below bound each stage for a loaded 2-core machine (start 300 s, parse 180 s, each run 600 s);
    # pytest-timeout counts the module fixture's start-up in the first test, so the suite's 900 s would cut first
    pytest.mark.timeout(2400),
    pytest.mark.skipif(not TWIN.exists(), reason="the twin_core environment (.venv) is not built"),
]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


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
            return run if run["state"] in ("success", "failed") else None

        run = self.wait_for(f"{dag_id} run {run_id}", done, timeout)
        assert run["state"] == "success", f"{dag_id} {run_id}: {self.task_states(dag_id, run_id)}\n{self.diagnostics()}"
        return run

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
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("AIRFLOW")}
    env.update(
        {
            "TWIN_CRAWL_ALLOW_HOSTS": "127.0.0.1",  # the fixture site (SSRF guard)
            "TWIN_CRAWL_TIMEOUT_S": "5",
            "TWIN_LLM_THREADS": "1",
            "OMP_NUM_THREADS": "1",
        }
    )
    log = (base / "launcher.log").open("w")
    cmd = [sys.executable, str(LAUNCHER), "--port", str(port), "--home", str(home), "--twin-home", str(twin_home)]
    cmd += ["--paused", "--parallelism", "3", "--log-port", "0", "--refresh-interval", "5"]
    proc = subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    client = httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=60)
    try:
        deadline = time.monotonic() + 300
        while "Airflow is up" not in (base / "launcher.log").read_text():
            assert proc.poll() is None, "launcher exited:\n" + (base / "launcher.log").read_text()
            assert time.monotonic() < deadline, "Airflow did not start:\n" + (base / "launcher.log").read_text()
            time.sleep(1)
        password = json.loads((home / "twin-local-secrets.json").read_text())["password"]
        # Token auth as a REST client does it: POST /auth/token, then a bearer token on /api/v2.
        token = client.post("/auth/token", json={"username": "admin", "password": password})
        token.raise_for_status()
        client.headers["Authorization"] = f"Bearer {token.json()['access_token']}"
        yield Airflow(f"http://127.0.0.1:{port}", home, twin_home, password, client, home / "env.sh")
    finally:
        client.close()
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)  # the launcher stops its components and their children
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=60)
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)  # whatever is left of its process group
        proc.wait(timeout=10)
        log.close()


def test_twin_etl_triggers_twin_features_through_the_rest_api(airflow: Airflow, git_repo: Path, twin) -> None:
    def parsed() -> bool:
        dags = {d["dag_id"] for d in airflow.get("/dags", limit=100)["dags"]}
        return set(OUR_DAGS) <= dags

    airflow.wait_for("the DAG processor to parse twin_etl and twin_features", parsed, timeout=180)
    assert airflow.get("/importErrors")["import_errors"] == []
    pools = {p["name"]: p["slots"] for p in airflow.get("/pools")["pools"]}
    assert pools["twin_embedded_qdrant"] == 1
    for dag_id in OUR_DAGS:  # every other DAG stays paused
        airflow.client.patch(f"/api/v2/dags/{dag_id}", json={"is_paused": False}).raise_for_status()

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
    states = airflow.task_states("twin_etl", run_id)
    assert states[("crawl", 0)] == "success"
    assert states[("crawl", 1)] == "success"
    assert states[("validate_raw", -1)] == "success"

    # The raw Asset queued twin_features (and nothing else did: the scheduled twin_etl run that
    # unpausing creates has no links, so it emits nothing).
    def features_done() -> list[dict] | None:
        runs = airflow.runs("twin_features")
        return runs if runs and all(r["state"] in ("success", "failed") for r in runs) else None

    runs = airflow.wait_for("twin_features to run from the Asset", features_done, timeout=600)
    assert [(r["run_type"], r["state"]) for r in runs] == [("asset_triggered", "success")], airflow.diagnostics()
    feature_states = airflow.task_states("twin_features", runs[0]["dag_run_id"])
    assert feature_states[("featurize_author", 0)] == "success"
    assert feature_states[("sync_and_publish", -1)] == "success"

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
    cmd = "airflow backfill create --dag-id twin_etl --from-date 2026-01-04 --to-date 2026-01-11"
    env = {k: v for k, v in os.environ.items() if not k.startswith("AIRFLOW")}  # only what env.sh sets
    out = subprocess.run(
        ["bash", "-c", f". {airflow.env_file} && {cmd}"], env=env, capture_output=True, text=True, timeout=300
    )
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-2000:]

    def backfill_runs() -> list[dict] | None:
        runs = [r for r in airflow.runs("twin_etl") if r["run_type"] == "backfill"]
        return runs if len(runs) == 2 and all(r["state"] in ("success", "failed") for r in runs) else None

    runs = airflow.wait_for("two weekly backfill runs", backfill_runs, timeout=400)
    assert sorted(r["logical_date"][:10] for r in runs) == ["2026-01-04", "2026-01-11"]
    assert [r["state"] for r in runs] == ["success", "success"], airflow.diagnostics()
    for run in runs:
        states = airflow.task_states("twin_etl", run["dag_run_id"])
        assert states[("validate_raw", -1)] == "skipped"  # nothing crawled, nothing emitted
    assert len(airflow.runs("twin_features")) == 1


@pytest.mark.browser
@pytest.mark.skipif(
    not (CHROMIUM.exists() and CHROMEDRIVER.exists()), reason="apt-get install chromium chromium-driver"
)
@pytest.mark.skipif(not TWIN_PY.exists(), reason="Selenium lives in the twin_core environment (.venv)")
def test_ui_login_trigger_form_docs_and_graph(airflow: Airflow, tmp_path: Path) -> None:
    shot = tmp_path / "graph.png"
    out = subprocess.run(
        [str(TWIN_PY), str(UI_CHECK), airflow.url, "admin", airflow.password, str(shot), RUNS.get("twin_etl", "")],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    seen = json.loads(out.stdout.strip().splitlines()[-1])
    assert seen["logged_in"] is True
    assert set(seen["trigger_form_fields"]) >= {"user_full_name", "links", "config"}
    assert "collect an author's writing into the warehouse" in seen["docs"]
    assert shot.stat().st_size > 10_000
    if os.environ.get("TWIN_REFRESH_DOCS_IMG") == "1":  # the README's graph; a test run leaves the tree clean
        SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(shot, SCREENSHOT)
