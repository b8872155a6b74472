"""DAG tests run in the Airflow environment (.venv-airflow), which has no twin_core.

Airflow is pointed at a throw-away AIRFLOW_HOME before it is imported, with the repo's dags/ and
plugins/ folders, as the scheduler and the DAG processor would see them.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
DAGS_DIR = REPO_ROOT / "dags"
PLUGINS_DIR = REPO_ROOT / "plugins"

_home = Path(tempfile.mkdtemp(prefix="airflow-home-"))
os.environ["AIRFLOW_HOME"] = str(_home)
os.environ["AIRFLOW__CORE__DAGS_FOLDER"] = str(DAGS_DIR)
os.environ["AIRFLOW__CORE__PLUGINS_FOLDER"] = str(PLUGINS_DIR)
os.environ["AIRFLOW__CORE__LOAD_EXAMPLES"] = "False"
os.environ["AIRFLOW__CORE__UNIT_TEST_MODE"] = "True"
os.environ.setdefault("TWIN_EXECUTION", "local")
if str(PLUGINS_DIR) not in sys.path:
    sys.path.insert(0, str(PLUGINS_DIR))


@pytest.fixture
def local_dagbag(monkeypatch: pytest.MonkeyPatch):
    """The repo's DagBag parsed in local mode, with no import errors."""
    from airflow.dag_processing.dagbag import DagBag

    monkeypatch.setenv("TWIN_EXECUTION", "local")
    bag = DagBag(str(DAGS_DIR))
    assert bag.import_errors == {}
    return bag


@pytest.fixture
def dag(local_dagbag, request: pytest.FixtureRequest):
    """The DAG named by the test module's ``DAG_ID``, parsed in local mode."""
    return local_dagbag.dags[request.module.DAG_ID]


# --- Shared scaffolding of the local end-to-end DAG tests (dag.test with TWIN_EXECUTION=local) ---------

TWIN = REPO_ROOT / ".venv" / "bin" / "twin"
TWIN_PY = REPO_ROOT / ".venv" / "bin" / "python"
AUTHOR = "Ada Quillfeather"


@pytest.fixture
def twin_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """``use(**settings)``: a fresh TWIN_HOME (tmp_path/twin) plus settings, set for the in-process tasks;
    returns the full environment for `twin` subprocesses."""

    def use(**settings: str) -> dict[str, str]:
        values = {"TWIN_HOME": str(tmp_path / "twin"), "HF_HUB_OFFLINE": "1", "TWIN_PROGRESS": "0", **settings}
        for key, value in values.items():
            monkeypatch.setenv(key, value)
        return {**os.environ, **values}

    return use


@pytest.fixture
def run_dag(monkeypatch: pytest.MonkeyPatch):
    """``run(dag, **dag_test_kwargs)`` -> (DagRun, {(task_id, map_index): state}) on the test's metadata DB.

    Without the DAG's deadline: Airflow 3.3's dag.test() passes DeadlineAlert objects where the DagRun
    expects stored alert ids (#73428); deadlines are a scheduler feature, tested in test_twin_monitoring_dag.
    """
    from airflow.utils import db

    def run(dag, **kwargs):  # noqa: ANN001, ANN202
        db.initdb()
        monkeypatch.setattr(dag, "deadline", None)
        dag_run = dag.test(**kwargs)
        return dag_run, {(ti.task_id, ti.map_index): ti.state for ti in dag_run.get_task_instances()}

    return run


@pytest.fixture
def twin():
    """``twin(env, *args)``: run `.venv/bin/twin`, assert it succeeded, return its JSON result line."""

    def call(env: dict[str, str], *args: str, timeout: float = 300) -> dict:
        out = subprocess.run([str(TWIN), *args], env=env, capture_output=True, text=True, timeout=timeout)
        assert out.returncode == 0, out.stderr[-2000:]
        return json.loads(out.stdout.strip().splitlines()[-1])

    return call


@pytest.fixture
def write_backup(tmp_path: Path):
    """``write(contents)``: a warehouse backup folder (`twin warehouse import`) with one LinkedIn post
    of Ada Quillfeather per text."""

    def write(contents: list[str]) -> Path:
        backup = tmp_path / "backup"
        backup.mkdir()
        author = {"_id": "u1", "first_name": "Ada", "last_name": "Quillfeather"}
        posts = [
            {
                "content": {"Content": text},
                "platform": "linkedin",
                "author_id": "u1",
                "author_full_name": AUTHOR,
                "link": f"https://www.linkedin.com/feed/update/urn:li:activity:{i}/",
            }
            for i, text in enumerate(contents)
        ]
        (backup / "UserDocument.json").write_text(json.dumps([author]))
        (backup / "PostDocument.json").write_text(json.dumps(posts))
        return backup

    return write


@pytest.fixture
def git_repo(tmp_path: Path) -> Path:
    """The sample repository (tiny-pipeline) as a one-commit git repository, for the git crawler."""
    from support import SAMPLE_DIR

    env = {
        **os.environ,
        "GIT_AUTHOR_NAME": "T",
        "GIT_AUTHOR_EMAIL": "t@example.com",
        "GIT_COMMITTER_NAME": "T",
        "GIT_COMMITTER_EMAIL": "t@example.com",
        "GIT_CONFIG_GLOBAL": os.devnull,
    }
    dest = tmp_path / "tiny-pipeline"
    shutil.copytree(SAMPLE_DIR / "repos" / "tiny-pipeline", dest)
    for cmd in (["git", "init", "-q"], ["git", "add", "-A"], ["git", "commit", "-q", "-m", "t"]):
        subprocess.run(cmd, cwd=dest, env=env, check=True, capture_output=True)
    return dest


K8S_VERSION = "1.33.0"


@pytest.fixture
def render_pod():
    """``render(task, arguments, **mapped)``: the pod a (mapped) pod task starts for these arguments and
    mapped kwargs, checked against the Kubernetes API schema; returns the manifest as a dict."""
    import kubernetes_validate
    from kubernetes.client import ApiClient

    def render(task, arguments: list[str] | None = None, **mapped) -> dict:  # noqa: ANN001
        cls = getattr(task, "operator_class", type(task))
        if cls is type(task):  # a plain (unmapped) operator
            pod = task.build_pod_request_obj(dry_run=True)
        else:
            kwargs = {k: v for k, v in task.partial_kwargs.items() if k != "task_id"}
            op = cls(task_id=task.task_id, **{**kwargs, "arguments": arguments or [], **mapped})
            pod = op.build_pod_request_obj(dry_run=True)
        manifest = ApiClient().sanitize_for_serialization(pod)
        manifest.setdefault("apiVersion", "v1")
        manifest.setdefault("kind", "Pod")
        kubernetes_validate.validate(manifest, K8S_VERSION, strict=True)
        return manifest

    return render
