"""`make airflow`'s SQLite fix (scripts/airflow_local_settings.py), shown with two connections on one file.

A SAVEPOINT (``session.begin_nested()``, as `airflow backfill create` makes each run) opened a read
snapshot; a write by another connection (the scheduler) then made the savepoint's own write fail at once
with "database is locked", whatever the busy timeout. With the fix the savepoint holds the write lock from
its start: the other writer waits (here: fails at once, busy timeout 0) and the savepoint's write commits.
Deterministic: one thread, the order of the statements is the race.
"""

from __future__ import annotations

import importlib.util
import sqlite3
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session

LOCAL_SETTINGS = Path(__file__).resolve().parents[2] / "scripts" / "airflow_local_settings.py"


def _local_settings():
    spec = importlib.util.spec_from_file_location("twin_airflow_local_settings", LOCAL_SETTINGS)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _db(tmp_path: Path) -> str:
    path = tmp_path / "airflow.db"
    with sqlite3.connect(path) as conn:
        conn.execute("PRAGMA journal_mode=WAL")  # as Airflow sets it on every connection
        conn.execute("CREATE TABLE dag_run (id INTEGER PRIMARY KEY, who TEXT)")
    return f"sqlite:///{path}?timeout=0"


def _savepoint_write_beside_a_scheduler_write(url: str, engine) -> None:  # noqa: ANN001
    scheduler = sqlite3.connect(url.removeprefix("sqlite:///").split("?")[0], timeout=0)
    with Session(engine) as backfill:
        with backfill.begin_nested():
            backfill.execute(text("SELECT count(*) FROM dag_run")).scalar_one()
            try:  # the scheduler writes while the backfill's savepoint is open
                scheduler.execute("INSERT INTO dag_run (who) VALUES ('scheduler')")
                scheduler.commit()
            except sqlite3.OperationalError:
                scheduler.rollback()  # it would wait under its busy timeout; here it gives up
            backfill.execute(text("INSERT INTO dag_run (who) VALUES ('backfill')"))
        backfill.commit()
    scheduler.close()


def test_a_savepoint_takes_the_write_lock_first_so_its_write_never_fails(tmp_path: Path) -> None:
    url = _db(tmp_path)
    module = _local_settings()
    engine = module.create_metadata_engine(url, engine_args={}, connect_args={"check_same_thread": False})
    _savepoint_write_beside_a_scheduler_write(url, engine)
    with engine.connect() as conn:
        assert conn.execute(text("SELECT who FROM dag_run")).scalars().all() == ["backfill"]


def test_without_the_fix_the_savepoint_write_fails_at_once(tmp_path: Path) -> None:
    url = _db(tmp_path)
    engine = create_engine(url, connect_args={"check_same_thread": False})
    with pytest.raises(OperationalError, match="database is locked"):
        _savepoint_write_beside_a_scheduler_write(url, engine)
