"""The Airflow CLI over the repo, as docs/usage.md documents it, in a throw-away AIRFLOW_HOME:

- `airflow dags list-import-errors` is empty in both execution modes;
- `airflow dags test twin_etl -c '{…}'` runs the DAG in one process (TWIN_EXECUTION=local) and crawls
  the sample repository into a throw-away TWIN_HOME.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import pytest
from support import SAMPLE_DIR

REPO_ROOT = Path(__file__).resolve().parents[2]
AIRFLOW = Path(sys.executable).parent / "airflow"
TWIN = REPO_ROOT / ".venv" / "bin" / "twin"
SAMPLE_REPO = SAMPLE_DIR / "repos" / "tiny-pipeline"


@pytest.fixture(scope="module")
def cli_env(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    home = tmp_path_factory.mktemp("airflow-cli-home")
    env = {k: v for k, v in os.environ.items() if not k.startswith("AIRFLOW")}
    env.update(
        {
            "AIRFLOW_HOME": str(home),
            "AIRFLOW_CONFIG": str(home / "airflow.cfg"),
            "AIRFLOW__CORE__DAGS_FOLDER": str(REPO_ROOT / "dags"),
            "AIRFLOW__CORE__PLUGINS_FOLDER": str(REPO_ROOT / "plugins"),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "TWIN_HOME": str(home / "twin"),
            "TWIN_PROGRESS": "0",
        }
    )
    _airflow(env, "db", "migrate")
    return env


def _airflow(env: dict[str, str], *args: str, timeout: float = 600) -> str:
    out = subprocess.run([str(AIRFLOW), *args], env=env, capture_output=True, text=True, timeout=timeout)
    assert out.returncode == 0, f"airflow {' '.join(args)}:\n{out.stdout[-3000:]}\n{out.stderr[-3000:]}"
    return out.stdout


@pytest.mark.parametrize("mode", ["local", "kubernetes"])
def test_list_import_errors_is_empty(cli_env: dict[str, str], mode: str) -> None:
    out = _airflow({**cli_env, "TWIN_EXECUTION": mode}, "dags", "list-import-errors", "--local", "-o", "json")
    assert json.loads(out.strip().splitlines()[-1]) == []


@pytest.mark.slow
@pytest.mark.skipif(not TWIN.exists(), reason="the twin_core environment (.venv) is not built")
def test_airflow_dags_test_runs_twin_etl(cli_env: dict[str, str], tmp_path: Path) -> None:
    repo = tmp_path / "tiny-pipeline"
    shutil.copytree(SAMPLE_REPO, repo)
    git_env = {**os.environ, "GIT_CONFIG_GLOBAL": os.devnull, "GIT_AUTHOR_NAME": "T", "GIT_COMMITTER_NAME": "T"}
    git_env |= {"GIT_AUTHOR_EMAIL": "t@example.com", "GIT_COMMITTER_EMAIL": "t@example.com"}
    for cmd in (["git", "init", "-q"], ["git", "add", "-A"], ["git", "commit", "-q", "-m", "t"]):
        subprocess.run(cmd, cwd=repo, env=git_env, check=True, capture_output=True)
    conf = json.dumps({"user_full_name": "Ada Quillfeather", "links": [repo.as_uri()]})
    # TWIN_DAG_DEADLINES=0: Airflow 3.3.2's `dags test` crashes after a successful run of a DAG with a
    # DeadlineAlert (apache/airflow#73428); docs/usage.md documents the same command line.
    env = {**cli_env, "TWIN_EXECUTION": "local", "TWIN_BIN": str(TWIN), "TWIN_DAG_DEADLINES": "0"}
    _airflow(env, "dags", "test", "twin_etl", "-c", conf)

    runs = json.loads(_airflow(env, "dags", "list-runs", "twin_etl", "-o", "json").strip().splitlines()[-1])
    assert [r["state"] for r in runs] == ["success"]
    out = _airflow(env, "tasks", "states-for-dag-run", "twin_etl", runs[0]["run_id"], "-o", "json")
    states: dict[str, list[str]] = {}
    for ti in json.loads(out.strip().splitlines()[-1]):  # one row per task instance (mapped ones too)
        states.setdefault(ti["task_id"], []).append(ti["state"])
    assert states == {
        "plan_crawls": ["success"],
        "crawl": ["success"],
        "check_changes": ["success"],
        "validate_raw": ["success"],
        "check_crawls": ["skipped"],  # fails the run only when the plan or a crawl failed
    }
    stats = subprocess.run([str(TWIN), "warehouse", "stats"], env=env, capture_output=True, text=True, check=True)
    assert json.loads(stats.stdout.strip().splitlines()[-1])["categories"]["repositories"]["total"] == 1


def test_deadline_alert_can_be_left_out_for_one_process_runs(monkeypatch: pytest.MonkeyPatch) -> None:
    from twin_ops.defaults import dag_kwargs

    assert dag_kwargs("doc", tags=[], step_timeout=timedelta(minutes=5))["deadline"].name == "run-took-too-long"
    monkeypatch.setenv("TWIN_DAG_DEADLINES", "0")
    assert "deadline" not in dag_kwargs("doc", tags=[], step_timeout=timedelta(minutes=5))
