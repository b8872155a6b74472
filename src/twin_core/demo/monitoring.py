"""`twin demo` stage ``monitor.drift``: a drift check over the demo's own requests.

The window is the last day up to now, so it holds the requests the ``serve.ask`` stage just logged (and
those of earlier demo runs on the same TWIN_HOME); the reference is the day before, recent traffic as in
production. A demo asks only a handful of questions: below TWIN_MONITOR_MIN_ROWS (20) requests the check
holds with "not enough data" (no model loaded, no alert) rather than pretend a distribution. It used to
compare its few requests with the training instructions with a minimum of 2, and 6 of 7 signals "drifted":
templated instructions are not user traffic, and a handful of rows is noise.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any


def stage(sample: Path) -> dict[str, Any]:
    from twin_core.features.embedding_model import load_embedder
    from twin_core.monitoring import LazyTextTools, TextTools, parse_window, run_drift_check
    from twin_core.settings import get_settings
    from twin_core.stores.artifacts import open_artifact_store
    from twin_core.stores.warehouse import open_warehouse

    settings = get_settings()
    # The window ends after the current minute: parse_time rounds "now" down, which would leave out the
    # request serve.ask logged seconds ago.
    window = parse_window("1d", datetime.now(UTC).replace(second=0, microsecond=0) + timedelta(minutes=1))
    result = run_drift_check(
        settings,
        window,
        tools=LazyTextTools(lambda: TextTools.from_embedder(load_embedder(settings))),
        warehouse=open_warehouse(settings),
        artifacts=open_artifact_store(settings),
        reference="previous",
        alert=True,  # as the hourly DAG does: the test checks that a demo's few requests raise none
    )
    summary: dict[str, Any] = {
        "window": result["window"],
        "requests": result["rows"],
        "verdict": result["verdict"],
        "alerts": result["alerts"],
        "report": result["report"],
    }
    if result["verdict"] == "not_enough_data":
        summary["reason"] = result["reason"]
    else:
        summary["reference"] = result["reference"]["kind"]
        summary["drifted"] = result["drifted"]
        summary["signals_checked"] = sum(1 for s in result["signals"].values() if "skipped" not in s)
    return summary
