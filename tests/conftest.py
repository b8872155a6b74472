"""Fixtures shared by the twin_core test suites.

This file is also loaded by the DAG tests in the Airflow environment, where twin_core is not
installed: so twin_core is imported inside fixtures only, never at module level.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from support import SAMPLE_DIR

TWIN_BIN = Path(sys.prefix) / "bin" / "twin"

# Offline, quiet defaults for every test process and every `twin` subprocess.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ["TWIN_PROGRESS"] = "0"


@pytest.fixture(scope="session")
def sample_dir() -> Path:
    """The sample corpus (read only: copy it before changing anything)."""
    return SAMPLE_DIR


@pytest.fixture
def twin_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh TWIN_HOME with the embedded stores, and settings reloaded from it."""
    home = tmp_path / "twin"
    monkeypatch.setenv("TWIN_HOME", str(home))
    for var in ("TWIN_MONGODB_URI", "TWIN_QDRANT_URL", "TWIN_ARTIFACTS_URI", "TWIN_EXECUTION"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.chdir(tmp_path)  # no stray .env from the repo
    from twin_core.settings import get_settings

    get_settings.cache_clear()
    yield home
    get_settings.cache_clear()


@pytest.fixture
def settings(twin_home: Path) -> Any:
    from twin_core.settings import get_settings

    return get_settings()


@pytest.fixture
def warehouse(settings: Any) -> Any:
    from twin_core.stores.warehouse import open_warehouse

    return open_warehouse(settings)


@dataclass
class TwinRun:
    returncode: int
    result: dict[str, Any] | None
    stdout: str
    stderr: str


def run_twin(
    *args: str,
    env: dict[str, str] | None = None,
    timeout: float = 600,
    cwd: Path | None = None,
    pass_fds: tuple[int, ...] = (),
) -> TwinRun:
    """Run the `twin` executable as a pipeline step would, and parse its last stdout line. ``pass_fds``: file
    descriptors the process inherits, under the same numbers (every other one but 0-2 is closed in it)."""
    proc = subprocess.run(
        [str(TWIN_BIN), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, **(env or {})},
        cwd=cwd,
        pass_fds=pass_fds,
    )
    lines = [ln for ln in proc.stdout.splitlines() if ln.strip()]
    result = None
    if lines:
        try:
            result = json.loads(lines[-1])
        except json.JSONDecodeError:
            result = None
    return TwinRun(proc.returncode, result, proc.stdout, proc.stderr)


@pytest.fixture
def twin() -> Any:
    """``twin(*args, env=...)`` runs the CLI in a subprocess; TWIN_HOME comes from the environment."""
    return run_twin
