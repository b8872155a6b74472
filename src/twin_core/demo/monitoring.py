"""`twin demo` stage ``monitor.drift``: a drift check over the demo's own requests.

The window is the last day up to now, so it holds the requests the ``serve.ask`` stage just logged (and
those of earlier demo runs on the same TWIN_HOME). The reference is the latest instruct dataset when the
datasets stage built one, else the previous day. A demo asks only a question or two: below
TWIN_MONITOR_MIN_ROWS requests the check says "not enough data" (no model loaded, no alert) rather than
pretend a distribution; with enough requests it writes the Evidently reports like the hourly DAG.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any


def stage(sample: Path) -> dict[str, Any]:
    from twin_core.features.embedding_model import load_embedder
    from twin_core.monitoring import LazyTextTools, TextTools, parse_window, run_drift_check
    from twin_core.settings import get_settings, updated
    from twin_core.stores.artifacts import open_artifact_store
    from twin_core.stores.warehouse import open_warehouse

    # The demo sends a handful of requests: check them against the training data rather than stop at
    # "not enough data" (a scheduled check keeps TWIN_MONITOR_MIN_ROWS, 20).
    settings = updated(get_settings(), monitor_min_rows=2)
    # The window ends after the current minute: parse_time rounds "now" down, which would leave out the
    # request serve.ask logged seconds ago.
    window = parse_window("1d", datetime.now(UTC).replace(second=0, microsecond=0) + timedelta(minutes=1))
    result = run_drift_check(
        settings,
        window,
        tools=LazyTextTools(lambda: TextTools.from_embedder(load_embedder(settings))),
        warehouse=open_warehouse(settings),
        artifacts=open_artifact_store(settings),
    )
    summary: dict[str, Any] = {
        "window": result["window"],
        "requests": result["rows"],
        "verdict": result["verdict"],
        "report": result["report"],
    }
    if result["verdict"] == "not_enough_data":
        summary["reason"] = result["reason"]
    else:
        summary["reference"] = result["reference"]["kind"]
        summary["drifted"] = result["drifted"]
        summary["signals_checked"] = sum(1 for s in result["signals"].values() if "skipped" not in s)
    return summary
