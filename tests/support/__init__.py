"""Helpers shared by the test suites and the benchmarks (``pythonpath = ["tests"]`` in pyproject.toml;
benchmarks put ``tests/`` on ``sys.path``). Plain paths only here: the DAG tests import this package in
the Airflow environment, where twin_core is not installed.
"""

from __future__ import annotations

from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
# The sample corpus ships inside the package (twin_core.demo.sample_dir()); tests/core checks both agree.
SAMPLE_DIR = REPO_ROOT / "src" / "twin_core" / "demo" / "sample"
