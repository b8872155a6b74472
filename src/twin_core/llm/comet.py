"""Comet settings shared by every stage that may import ``comet_ml`` (training, evaluation)."""

from __future__ import annotations

import os


def quiet_comet() -> None:
    """Read by comet_ml when first imported: no crash reports to Comet's Sentry (no network here, and
    none wanted), no framework auto-logging (we log the Trainer's metrics ourselves)."""
    os.environ.setdefault("COMET_ERROR_TRACKING_ENABLE", "false")
    os.environ.setdefault("COMET_DISABLE_AUTO_LOGGING", "1")
