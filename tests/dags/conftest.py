"""DAG tests run in the Airflow environment (.venv-airflow), which has no twin_core.

Airflow is pointed at a throw-away AIRFLOW_HOME before it is imported, with the repo's dags/ and
plugins/ folders, as the scheduler and the DAG processor would see them.
"""

from __future__ import annotations

import os
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
