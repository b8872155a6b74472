"""Defaults every LLM Twin DAG shares: owner, retries with backoff, failure alerts, tags."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from twin_ops.notifiers import TwinAlertNotifier

OWNER = "llm-twin"
START_DATE = datetime(2026, 1, 1)


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


def dag_kwargs(doc_md: str, *, tags: list[str], **overrides: Any) -> dict[str, Any]:
    """Keyword arguments for ``@dag`` shared by all pipelines."""
    kwargs: dict[str, Any] = {
        "start_date": START_DATE,
        "catchup": False,
        "max_active_runs": 1,
        "default_args": default_args(),
        "doc_md": doc_md,
        "tags": ["llm-twin", *tags],
        "owner_links": {OWNER: "https://github.com/llm-twin/llm-twin"},
    }
    kwargs.update(overrides)
    return kwargs
