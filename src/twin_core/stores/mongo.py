"""The pymongo ``Database`` behind the warehouse: MongoDB by URI, or litemongo under TWIN_HOME.

litemongo is mongomock (the pymongo API, in-process) persisted to SQLite files: unique indexes,
upserts and bulk writes behave as in pymongo, and a second process sees the data. That gives the
same code path on a laptop and against a real server, with no server to run.
"""

from __future__ import annotations

import logging
from typing import Any
from urllib.parse import urlparse

from twin_core.errors import BackendUnavailable, ConfigError
from twin_core.settings import Settings
from twin_core.stores.embedded import refuse_in_pod

log = logging.getLogger(__name__)


def _host_of(uri: str) -> str:
    netloc = urlparse(uri).netloc
    return netloc.rsplit("@", 1)[-1] or uri  # never echo credentials


def open_database(settings: Settings) -> Any:
    """Return a pymongo-compatible ``Database`` (connected and checked)."""
    if settings.mongodb_uri:
        import pymongo
        from pymongo.errors import ConfigurationError, PyMongoError

        host = _host_of(settings.mongodb_uri)
        try:
            client = pymongo.MongoClient(
                settings.mongodb_uri,
                serverSelectionTimeoutMS=settings.mongodb_timeout_ms,
                connectTimeoutMS=settings.mongodb_timeout_ms,
                tz_aware=True,
            )
            client.admin.command("ping")  # fail fast instead of hanging on the first query
        except ConfigurationError as exc:
            raise ConfigError(f"TWIN_MONGODB_URI: {exc}") from None
        except PyMongoError as exc:
            raise BackendUnavailable(
                f"MongoDB at {host} unreachable after {settings.mongodb_timeout_ms} ms "
                f"(TWIN_MONGODB_URI): {type(exc).__name__}"
            ) from None
        log.debug("warehouse: MongoDB at %s", host)
        return client[settings.mongodb_database]

    refuse_in_pod(settings, "TWIN_MONGODB_URI")  # kubernetes mode: a pod's TWIN_HOME is deleted with it
    import litemongo

    path = settings.warehouse_path
    try:
        path.mkdir(parents=True, exist_ok=True)
        probe = path / ".write-probe"
        probe.write_text("ok")
        probe.unlink()
    except OSError as exc:
        raise ConfigError(f"TWIN_HOME: cannot write the embedded warehouse at {path}: {exc.strerror}") from None
    client = litemongo.connect(str(path.resolve()), tz_aware=True)
    log.debug("warehouse: embedded litemongo at %s", path)
    return client[settings.mongodb_database]
