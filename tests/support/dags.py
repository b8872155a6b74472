"""Helpers for the DAG tests (tests/dags), importable in the Airflow environment (no twin_core)."""

from __future__ import annotations

from typing import Any


def asset_condition(dag: Any) -> str:
    """The Asset condition of a DAG scheduled on Assets (fails for any other schedule)."""
    assert type(dag.timetable).__name__ == "AssetTriggeredTimetable", dag.timetable
    return str(dag.timetable.asset_condition)


def edges(dag: Any) -> dict[str, list[str]]:
    """The DAG's graph: each task id with its sorted downstream task ids."""
    return {t.task_id: sorted(t.downstream_task_ids) for t in dag.tasks}
