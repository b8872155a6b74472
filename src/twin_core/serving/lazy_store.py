"""The vector store as the server holds it: opened once at startup, or at the first request after an
outage. Qdrant unreachable -> BackendUnavailable (HTTP 503 with the reason), never a crash."""

from __future__ import annotations

import logging
import threading
from typing import Any

from twin_core.errors import BackendUnavailable
from twin_core.settings import Settings

log = logging.getLogger(__name__)


class LazyVectorStore:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._store: Any = None
        self._lock = threading.Lock()

    def try_open(self) -> bool:
        try:
            _ = self.store
            return True
        except BackendUnavailable as exc:
            log.warning("vector store not available yet (requests get 503 until it is): %s", exc)
            return False

    @property
    def store(self) -> Any:
        """The opened ``VectorStore`` (opened now if needed)."""
        with self._lock:
            if self._store is None:
                from twin_core.stores.vectors import open_vector_store

                self._store = open_vector_store(self.settings)
            return self._store

    def __getattr__(self, name: str) -> Any:
        # Everything else (has_collection, collection_metadata, scroll...) is the VectorStore's.
        if name.startswith("_"):
            raise AttributeError(name)
        return getattr(self.store, name)

    def close(self) -> None:
        with self._lock:
            if self._store is not None:
                self._store.close()
                self._store = None
