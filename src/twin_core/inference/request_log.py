"""The inference request log: one append-only ``InferenceLog`` row per request, written through the
warehouse (``Warehouse.append_inference_log``; read back with ``Warehouse.inference_logs``).

A failed write never fails the request: it is logged and counted (``failures``, and the Prometheus
counter ``twin_request_log_failures_total`` when serving).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any, Protocol

from twin_core.domain.inference import InferenceLog
from twin_core.errors import BackendUnavailable, InputError

log = logging.getLogger(__name__)


def failure_status(exc: BaseException) -> str:
    """A failed request's ``status`` in the log: ``cancelled`` (the client left), ``unavailable`` (a backend
    down), ``rejected`` (the client's bad input) or ``error`` (the server failed). The drift check's error
    rate counts only the server's: ``error`` and ``unavailable``."""
    if isinstance(exc, asyncio.CancelledError):
        return "cancelled"
    if isinstance(exc, BackendUnavailable):
        return "unavailable"
    if isinstance(exc, InputError):
        return "rejected"
    return "error"


class LogSink(Protocol):
    def append_inference_log(self, row: InferenceLog) -> None: ...


class RequestLog:
    def __init__(self, warehouse: LogSink, on_failure: Callable[[], None] | None = None) -> None:
        self.warehouse = warehouse
        self.failures = 0
        self._on_failure = on_failure

    def write(self, row: InferenceLog | dict[str, Any]) -> bool:
        """Append ``row`` (a dict gets a fresh ``id`` and ``time``). Returns False if the write failed."""
        try:
            entry = row if isinstance(row, InferenceLog) else InferenceLog.model_validate(row)
            self.warehouse.append_inference_log(entry)
            return True
        except Exception as exc:
            self.failures += 1
            if self._on_failure:
                self._on_failure()
            log.warning("request log write failed (%s: %s); the request itself is unaffected", type(exc).__name__, exc)
            return False
