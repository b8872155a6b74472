"""Comet settings shared by every stage that may import ``comet_ml`` (training, evaluation)."""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

# comet_ml's console warnings that mislead a reader of a task log: we log the metrics ourselves (auto-logging
# is off on purpose, so the import order does not matter), and an offline run has no route for the host's IP.
# transformers' (printed when TRL is imported) asks for COMET_API_KEY "to enable Comet logging": without one
# we log to an offline archive, whose upload hint comet_ml prints.
MISLEADING = (
    "To get all data logged automatically, import comet_ml before",
    "Failed to log ip",
    "comet_ml is installed but the Comet API Key is not configured",
)
TRANSFORMERS_PROBE = "transformers.integrations.integration_utils"


def quiet_comet() -> None:
    """Read by comet_ml when first imported: no crash reports to Comet's Sentry (no network here, and
    none wanted), no framework auto-logging (we log the Trainer's metrics ourselves); and transformers'
    misleading probe message is dropped."""
    os.environ.setdefault("COMET_ERROR_TRACKING_ENABLE", "false")
    os.environ.setdefault("COMET_DISABLE_AUTO_LOGGING", "1")
    probe = logging.getLogger(TRANSFORMERS_PROBE)  # the same logger transformers takes at its import
    if _not_misleading not in probe.filters:
        probe.addFilter(_not_misleading)


def _not_misleading(record: logging.LogRecord) -> bool:
    return not record.getMessage().startswith(MISLEADING)


def drop_misleading_warnings() -> None:
    """After comet_ml's import (it installs its console handler then): its two misleading warnings are
    dropped; every other line it writes (where the offline archive went, how to upload it) stays."""
    for handler in logging.getLogger("comet_ml").handlers:
        if _not_misleading not in handler.filters:
            handler.addFilter(_not_misleading)


def start_experiment(
    name: str, tags: list[str], folder: Path, *, project: str, workspace: str | None, **options: Any
) -> Any:
    """A Comet experiment: online with COMET_API_KEY, else an offline archive written into ``folder``.
    Nothing is logged for us (auto-logging, code, git off); ``options`` are more ``ExperimentConfig`` fields."""
    quiet_comet()  # before comet_ml's first import
    import comet_ml

    drop_misleading_warnings()
    online = is_online()
    config = comet_ml.ExperimentConfig(
        name=name,
        tags=tags,
        offline_directory=str(folder),
        auto_metric_logging=False,
        auto_param_logging=False,
        log_code=False,
        log_git_metadata=False,
        log_git_patch=False,
        display_summary_level=0,
        **options,
    )
    return comet_ml.start(
        project_name=project, workspace=workspace if online else None, online=online, experiment_config=config
    )


def is_online() -> bool:
    """Comet runs online only with an API key."""
    return bool(os.environ.get("COMET_API_KEY"))


def offline_archive(folder: Path, key: str) -> Path | None:
    """The offline archive of experiment ``key`` in ``folder`` (the newest archive there if none is named so)."""
    archives = sorted(folder.glob(f"{key}*.zip")) or sorted(folder.glob("*.zip"))
    return archives[-1] if archives else None
