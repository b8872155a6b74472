"""Airflow local settings for `make airflow` (SQLite metadata DB); the launcher copies this file to
``$AIRFLOW_HOME/config/airflow_local_settings.py``, where every Airflow process (components and CLI) loads it.

Why: SQLite takes one writer at a time. Airflow 3 already opens SQLite in WAL mode (readers never wait)
and the connection URL sets a busy timeout, so a writer waits for the lock instead of failing. The one
case the busy timeout cannot cover is a transaction that *reads first and then writes*: SQLite refuses
to upgrade a read snapshot while another connection writes (or wrote since the snapshot), at once and
without calling the busy handler: ``sqlite3.OperationalError: database is locked``. Python's sqlite3
starts transactions only before a write, so plain sessions never hold a read snapshot, but a SQLAlchemy
SAVEPOINT (``session.begin_nested()``) does: ``airflow backfill create`` makes each run inside one and
failed whenever the scheduler wrote meanwhile. Here a SAVEPOINT that would open a transaction opens it
with ``BEGIN IMMEDIATE``: it takes the write lock first, waiting under the busy timeout like any writer.

PostgreSQL is what Airflow recommends for production (the compose stack and the chart use it); for
`make airflow` one SQLite file keeps the laptop setup to zero services.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import create_engine, event
from sqlalchemy.engine import Connection, Engine


def begin_immediate_before_savepoint(engine: Engine) -> None:
    """On SQLite, a SAVEPOINT outside a transaction first takes the write lock (``BEGIN IMMEDIATE``)."""
    if engine.dialect.name != "sqlite":
        return

    @event.listens_for(engine, "savepoint")
    def _take_write_lock(conn: Connection, _name: str | None) -> None:
        dbapi = conn.connection.dbapi_connection
        if dbapi is not None and not dbapi.in_transaction:
            conn.exec_driver_sql("BEGIN IMMEDIATE")


def create_metadata_engine(
    sql_alchemy_conn: str, *, engine_args: dict[str, Any], connect_args: dict[str, Any]
) -> Engine:
    """Airflow's hook (airflow.settings.create_metadata_engine), with the SAVEPOINT fix on SQLite."""
    engine = create_engine(sql_alchemy_conn, connect_args=connect_args, **engine_args, future=True)
    begin_immediate_before_savepoint(engine)
    return engine
