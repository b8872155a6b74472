"""Defaults every LLM Twin DAG shares: owner, retries with backoff, failure alerts, a deadline, tags."""

from __future__ import annotations

import os
from datetime import datetime, timedelta
from typing import Any

from airflow.sdk.definitions.callback import AsyncCallback
from airflow.sdk.definitions.deadline import DeadlineAlert, DeadlineReference

from twin_ops.notifiers import TwinAlertNotifier, deadline_missed

OWNER = "llm-twin"
START_DATE = datetime(2026, 1, 1)
DEFAULT_DEADLINE = timedelta(hours=2)


def deadline_alert(after: timedelta = DEFAULT_DEADLINE) -> DeadlineAlert:
    """Alert (``deadline_missed``, in the triggerer) when a run is still going ``after`` it was queued."""
    return DeadlineAlert(
        reference=DeadlineReference.DAGRUN_QUEUED_AT,
        interval=after,
        callback=AsyncCallback(deadline_missed, kwargs={"interval": str(after)}),
        name="run-took-too-long",
    )


def deadlines_enabled() -> bool:
    """``TWIN_DAG_DEADLINES=0`` leaves the DeadlineAlert out. For one-process runs only: Airflow 3.3.2's
    ``airflow dags test`` / ``dag.test()`` run a DAG with a deadline to success, then crash in
    ``DagRun.update_state`` ('dict' object has no attribute 'hex', apache/airflow#73428)."""
    return os.environ.get("TWIN_DAG_DEADLINES", "1").strip() != "0"


def default_args(**overrides: Any) -> dict[str, Any]:
    args = {
        "owner": OWNER,
        "retries": 2,
        "retry_delay": timedelta(minutes=1),
        "retry_exponential_backoff": True,
        "max_retry_delay": timedelta(minutes=15),
        "on_failure_callback": [TwinAlertNotifier()],
    }
    args.update(overrides)
    return args


def dag_kwargs(
    doc_md: str,
    *,
    tags: list[str],
    step_timeout: timedelta,
    deadline: timedelta = DEFAULT_DEADLINE,
    **overrides: Any,
) -> dict[str, Any]:
    """Keyword arguments for ``@dag`` shared by all pipelines. ``step_timeout``: each task's budget per try
    (``execution_timeout``: a stuck try is killed, then retried, and its last failure pages; without one a
    hung step held the DAG's only active run for good); ``deadline``: how long a run may take."""
    kwargs: dict[str, Any] = {
        **({"deadline": deadline_alert(deadline)} if deadlines_enabled() else {}),
        "start_date": START_DATE,
        "catchup": False,
        "max_active_runs": 1,
        "default_args": default_args(execution_timeout=step_timeout),
        "doc_md": doc_md,
        "tags": ["llm-twin", *tags],
        "owner_links": {OWNER: "https://github.com/llm-twin/llm-twin"},
    }
    kwargs.update(overrides)
    return kwargs
