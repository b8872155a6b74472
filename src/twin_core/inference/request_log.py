"""The inference request log: one append-only row per request in the warehouse collection
``inference_logs`` (read by the monitoring stage for drift reports).

A failed write never fails the request: it is logged and counted (``failures``, and the Prometheus
counter ``twin_request_log_failures_total`` when serving).
"""

from __future__ import annotations

import logging
import threading
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

log = logging.getLogger(__name__)

COLLECTION = "inference_logs"


class RequestLog:
    def __init__(self, db: Any, on_failure: Callable[[], None] | None = None) -> None:
        self.db = db
        self.failures = 0
        self._on_failure = on_failure
        self._lock = threading.Lock()

    def write(self, row: dict[str, Any]) -> bool:
        """Insert ``row`` (adds ``_id`` and ``time`` when missing). Returns False if the write failed."""
        doc = {"_id": str(uuid.uuid4()), "time": datetime.now(UTC), **row}
        try:
            with self._lock:  # the embedded warehouse (SQLite) prefers one writer at a time
                self.db[COLLECTION].insert_one(doc)
            return True
        except Exception as exc:
            self.failures += 1
            if self._on_failure:
                self._on_failure()
            log.warning("request log write failed (%s: %s); the request itself is unaffected", type(exc).__name__, exc)
            return False
