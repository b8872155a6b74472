"""Comet settings shared by every stage that may import ``comet_ml`` (training, evaluation)."""

from __future__ import annotations

import logging
import os

# comet_ml's console warnings that mislead a reader of a task log: we log the metrics ourselves (auto-logging
# is off on purpose, so the import order does not matter), and an offline run has no route for the host's IP.
MISLEADING = ("To get all data logged automatically, import comet_ml before", "Failed to log ip")


def quiet_comet() -> None:
    """Read by comet_ml when first imported: no crash reports to Comet's Sentry (no network here, and
    none wanted), no framework auto-logging (we log the Trainer's metrics ourselves)."""
    os.environ.setdefault("COMET_ERROR_TRACKING_ENABLE", "false")
    os.environ.setdefault("COMET_DISABLE_AUTO_LOGGING", "1")


def _not_misleading(record: logging.LogRecord) -> bool:
    return not record.getMessage().startswith(MISLEADING)


def drop_misleading_warnings() -> None:
    """After comet_ml's import (it installs its console handler then): its two misleading warnings are
    dropped; every other line it writes (where the offline archive went, how to upload it) stays."""
    for handler in logging.getLogger("comet_ml").handlers:
        if _not_misleading not in handler.filters:
            handler.addFilter(_not_misleading)
