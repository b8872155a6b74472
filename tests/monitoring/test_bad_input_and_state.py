"""Bad input to `twin monitor`: a clear error with the right exit code, and nothing written or lost. Alert
records that no check reported, a corrupt alert state, an unreadable config or request-log row, a
--baseline-end that would be ignored; and the uncertainty a resolved rate alert states. No model, no traffic."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

END = "2026-11-21T12:00:00Z"
FOLDER = ("artifacts", "monitoring", "all")


def _check(settings: Any, signals: dict[str, Any]) -> None:
    """The result.json `twin monitor drift` leaves for the window 11:00-12:00."""
    from twin_core.monitoring.evidently_reports import ReportWriter
    from twin_core.monitoring.windows import parse_window
    from twin_core.stores.artifacts import open_artifact_store

    window = parse_window("1h", END)
    result = {"window": window.as_dict(), "author": None, "signals": signals, "verdict": "drift"}
    ReportWriter(open_artifact_store(settings), None, window).write_result(result)


def test_record_alerts_refuses_what_no_check_reported(settings: Any, twin_home: Path, twin) -> None:
    """A window never checked, or a signal its check does not have (a typo), used to open a signal nothing
    resolves and move the state's as_of past the windows still to page."""
    args = ("monitor", "record-alerts", "--window", "1h", "--end", END, "--delivered")
    run = twin(*args, "drift:query_length")
    assert run.returncode == 3 and "no drift check of the window 20261121T110000Z-1h" in run.result["error"]
    _check(settings, {"query_length": {"score": 5.0}})
    run = twin(*args, "drift:query_lenght")
    assert run.returncode == 3 and "query_lenght: not a signal of the window's check" in run.result["error"]
    folder = twin_home.joinpath(*FOLDER)
    assert not (folder / "alert_state.json").exists() and not list(folder.glob("*/alerts.json"))
    assert twin(*args, "drift:query_length").returncode == 0
    assert json.loads((folder / "alert_state.json").read_text())["signals"]["query_length"]["status"] == "open"


def test_a_corrupt_alert_state_is_bad_input_and_nothing_is_written(settings: Any, twin_home: Path, twin) -> None:
    """It used to exit 1 with a bare JSONDecodeError, after marking the alert delivered in alerts.json."""
    _check(settings, {"query_length": {"score": 5.0}})
    state = twin_home.joinpath(*FOLDER, "alert_state.json")
    state.parent.mkdir(parents=True, exist_ok=True)
    for garbage in ('{"as_of": "2026-11', "[1, 2]", '{"as_of": "yesterday", "signals": {}}'):
        state.write_text(garbage)
        run = twin("monitor", "record-alerts", "--window", "1h", "--end", END, "--delivered", "drift:query_length")
        assert run.returncode == 3, garbage
        assert "alert_state.json" in run.result["error"] and "fix or delete it" in run.result["error"]
        assert state.read_text() == garbage
        assert not list(state.parent.glob("*/alerts.json")), "marked delivered while the state was unreadable"


@pytest.mark.parametrize("make", [lambda p: p.mkdir(), lambda p: p.write_bytes(b"\xff\xfe signals")])
def test_an_unreadable_signal_config_is_a_config_error(twin_home: Path, tmp_path: Path, twin, make: Any) -> None:
    """A folder or a non-UTF-8 file used to exit 1 (unexpected) with a bare OSError / UnicodeDecodeError."""
    config = tmp_path / "monitoring.yaml"
    make(config)
    run = twin("monitor", "drift", "--end", END, env={"TWIN_MONITOR_CONFIG": str(config)})
    assert run.returncode == 2 and "TWIN_MONITOR_CONFIG" in run.result["error"]


class _Warehouse:
    """A request log whose third row is not an InferenceLog (as the warehouse reads them, row by row)."""

    def inference_logs(self, start: datetime, end: datetime, author: Any, *, batch_size: int) -> Any:
        from twin_core.domain.inference import InferenceLog

        for i in range(3):
            row = {"_id": f"r{i}", "time": start, "status": "ok", "query": "hi" if i < 2 else 42}
            yield InferenceLog.from_mongo(row)


def test_an_unreadable_request_log_row_is_bad_input_naming_it_and_where_it_is() -> None:
    """It used to exit 1 with pydantic's multi-line dump and no hint of which row; then it named only the
    row before it (the parser did not say which row it failed on)."""
    from twin_core.errors import InputError
    from twin_core.monitoring.scopes import read_logs
    from twin_core.monitoring.windows import parse_window

    with pytest.raises(
        InputError,
        match=r"unreadable row 'r2' in .* \(row 3 in time order, after the row 'r1'\): query: Input should be",
    ):
        read_logs(_Warehouse(), parse_window("1h", END), None)


def test_a_baseline_end_with_another_reference_is_refused(settings: Any) -> None:
    """--baseline-end with --reference previous used to be ignored: a check against what nobody asked for."""
    from twin_core.errors import InputError
    from twin_core.monitoring import parse_window, plan_drift_check

    window, signals = parse_window("1h", END), []
    with pytest.raises(InputError, match="only read with --reference baseline"):
        plan_drift_check(settings, window, reference="previous", baseline_end="2026-11-20T12:00Z", signals=signals)
    plan = plan_drift_check(settings, window, reference="previous", baseline_end=" ", signals=signals)
    assert plan.reference_window == window.previous()


def test_a_resolved_rate_alert_states_its_interval() -> None:
    """Every alert states its uncertainty: a resolved error rate used to carry no interval."""
    from twin_core.monitoring.alert_state import plan_alerts

    end = datetime(2026, 11, 21, 12, tzinfo=UTC)
    state = {"as_of": (end - timedelta(hours=1)).isoformat(), "signals": {"error_rate": {"status": "open"}}}
    entry = {"score": -0.05, "threshold": 0.02, "rows": 40, "reference_rows": 40, "interval": [-0.05, 0.08]}
    result = {
        "window": {"end": end.isoformat()},
        "report": "r",
        "signals": {"error_rate": {**entry, "confidence": 0.95}},
    }
    (resolved,) = plan_alerts(state, result, repeat_h=24)
    assert resolved["kind"] == "resolved" and resolved["interval"] == [-0.05, 0.08] and resolved["confidence"] == 0.95


def test_an_informational_check_that_compared_nothing_says_why() -> None:
    from twin_core.monitoring.drift import DriftPlan, _verdict
    from twin_core.monitoring.windows import parse_window

    plan = DriftPlan(parse_window("1h", END), "training", None, None, (), 20, 150, False, False)
    why = "no instruct dataset version: the training corpus is unknown"
    result = {"signals": {"document_length": {"status": "held", "skipped": why}}, "held": [], "drifted": []}
    _verdict(plan, result)
    assert result["verdict"] == "informational" and why in result["reason"]


def test_the_task_log_says_the_verdict_and_where_the_result_is() -> None:
    """The log of a check used to say only that the embedder loaded: the verdict was in the JSON line alone."""
    from twin_core.monitoring.drift import summary

    entry = {"status": "scored"}
    result = {
        "window": {"key": "20261121T110000Z-1h"}, "reference": {"kind": "previous"}, "rows": 40,
        "verdict": "drift", "signals": {"query_length": entry, "latency_ms": entry}, "held": [],
        "drifted": [{"signal": "query_length"}], "alerts": [{"kind": "drift", "signal": "query_length"}],
        "report": "/r",
    }  # fmt: skip
    line = summary(result)
    assert "20261121T110000Z-1h" in line and "drift; 2 of 2 signals scored" in line
    assert "drifted: query_length; alerts due: drift:query_length; /r" in line
