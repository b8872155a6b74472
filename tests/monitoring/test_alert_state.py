"""Which drift alerts are due across windows (``monitoring/alert_state.py``): a drift pages once, a signal
still drifting is reminded at most every TWIN_MONITOR_ALERT_REPEAT_H hours, a signal back within its
threshold sends one "resolved"; nothing is recorded until `twin monitor record-alerts` says it was
delivered. Built from check results by hand: no model, no traffic."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

T0 = datetime(2026, 11, 21, 10, tzinfo=UTC)


def _entry(score: float | None, threshold: float = 1.0, **extra: Any) -> dict[str, Any]:
    return {
        "scope": "queries", "reference": "baseline", "method": "wasserstein", "statistic": "W",
        "threshold": threshold, "score": score, "drifted": score is not None and score > threshold,
        "drift_when": "above", "rows": 40, "reference_rows": 40, **extra,
    }  # fmt: skip


def _result(hour: int, scores: dict[str, float | None], author: str | None = None) -> dict[str, Any]:
    """A traffic check's result for the window ending at T0 + hour, with ``alerts`` as the check lists them
    (every drifted signal; ``ReportWriter.new_alerts`` leaves out those delivered for the window)."""
    from twin_core.monitoring.windows import Window

    window = Window(T0 + timedelta(hours=hour - 1), T0 + timedelta(hours=hour))
    signals = {name: _entry(score) for name, score in scores.items()}
    drifted = [{"signal": n, "score": e["score"], **e} for n, e in signals.items() if e["drifted"]]
    alerts = [
        {"signal": d["signal"], "value": d["score"], "threshold": d["threshold"], "window": window.as_dict()}
        for d in drifted
    ]
    return {
        "window": window.as_dict(), "author": author, "reference": {"kind": "baseline", "informational": False},
        "report": f"monitoring/all/{window.key}", "signals": signals, "drifted": drifted, "alerts": alerts,
        "verdict": "drift" if drifted else "no_drift",
    }  # fmt: skip


def _kinds(due: list[dict[str, Any]]) -> list[tuple[str, str]]:
    return [(a["kind"], a["signal"]) for a in due]


def test_an_ongoing_drift_pages_once_reminds_after_the_repeat_and_resolves_once() -> None:
    from twin_core.monitoring.alert_state import apply_delivered, plan_alerts
    from twin_core.monitoring.windows import Window

    def window(hour: int) -> Window:
        return Window(T0 + timedelta(hours=hour - 1), T0 + timedelta(hours=hour))

    state: dict[str, Any] = {}
    pages: list[tuple[int, str, str]] = []
    # hours 1-30: query_length drifts from hour 2 to hour 28; latency never does
    for hour in range(1, 31):
        score = 5.0 if 2 <= hour <= 28 else 0.2
        due = plan_alerts(state, _result(hour, {"query_length": score, "latency_ms": 0.1}), repeat_h=24)
        pages += [(hour, kind, signal) for kind, signal in _kinds(due)]
        state = apply_delivered(state, window(hour), _kinds(due))  # all delivered
    assert pages == [
        (2, "drift", "query_length"),
        (26, "reminder", "query_length"),  # 24 h of window time after its last alert
        (29, "resolved", "query_length"),
    ]
    assert state["signals"]["query_length"] == {
        "status": "resolved", "since": "2026-11-21T12:00:00+00:00", "last_alert": "2026-11-22T12:00:00+00:00",
        "window": "20261122T110000Z-1h", "resolved": "2026-11-22T15:00:00+00:00",
    }  # fmt: skip
    assert state["as_of"] == "2026-11-22T15:00:00+00:00"


def test_a_distance_beyond_its_threshold_but_not_significant_stays_open_without_a_page() -> None:
    """Drifted, then twice above the threshold with p >= alpha (not drifted, not back within it): no resolved
    alert and no reminder, the signal stays open; back within the threshold it resolves once."""
    from twin_core.monitoring.alert_state import apply_delivered, plan_alerts
    from twin_core.monitoring.windows import Window

    state: dict[str, Any] = {}
    pages: list[tuple[int, str, str]] = []
    for hour, score, drifted in ((1, 5.0, True), (2, 3.0, False), (3, 2.5, False), (4, 0.4, False)):
        result = _result(hour, {"latency_ms": score})
        result["signals"]["latency_ms"]["drifted"] = drifted  # p-value: significant at hour 1 only
        if not drifted:
            result["drifted"], result["alerts"] = [], []
        due = plan_alerts(state, result, repeat_h=0)
        pages += [(hour, kind, signal) for kind, signal in _kinds(due)]
        state = apply_delivered(state, Window(T0 + timedelta(hours=hour - 1), T0 + timedelta(hours=hour)), _kinds(due))
        if hour in (2, 3):
            assert state["signals"]["latency_ms"]["status"] == "open"
    assert pages == [(1, "drift", "latency_ms"), (4, "resolved", "latency_ms")]


def test_nothing_is_recorded_until_delivered_so_an_undelivered_alert_stays_due() -> None:
    from twin_core.monitoring.alert_state import plan_alerts

    result = _result(2, {"query_length": 5.0})
    assert _kinds(plan_alerts({}, result, repeat_h=24)) == [("drift", "query_length")]
    assert _kinds(plan_alerts({}, result, repeat_h=24)) == [("drift", "query_length")]  # planned again: still due
    later = _result(3, {"query_length": 5.0})  # the next hour, the first never delivered: it pages then
    assert _kinds(plan_alerts({}, later, repeat_h=24)) == [("drift", "query_length")]


def test_resolved_needs_a_score_a_held_or_informational_window_changes_nothing() -> None:
    from twin_core.monitoring.alert_state import plan_alerts

    noon = "2026-11-21T12:00:00+00:00"
    state = {"as_of": noon, "signals": {"query_length": {"status": "open", "since": noon, "last_alert": noon}}}
    held = _result(3, {"latency_ms": 0.1})
    held["signals"]["query_length"] = {"scope": "queries", "skipped": "3 rows (< 20)", "threshold": 1.0}
    assert plan_alerts(state, held, repeat_h=24) == []  # not scored: still open
    assert plan_alerts(state, _result(3, {"query_length": None}), repeat_h=24) == []  # no score (NaN)
    training = _result(3, {"query_length": 0.1})
    training["reference"] = {"kind": "training", "informational": True}
    assert plan_alerts(state, training, repeat_h=24) == []
    [resolved] = plan_alerts(state, _result(3, {"query_length": 0.1}), repeat_h=24)
    assert resolved == {
        "signal": "query_length", "kind": "resolved", "value": 0.1, "threshold": 1.0, "method": "wasserstein",
        "drift_when": "above", "statistic": "W", "rows": 40, "reference_rows": 40, "reference": "baseline",
        "since": noon, "window": _result(3, {})["window"], "report": "monitoring/all/20261121T120000Z-1h",
    }  # fmt: skip


def test_a_window_before_the_newest_recorded_one_pages_nothing_and_records_nothing() -> None:
    from twin_core.monitoring.alert_state import apply_delivered, plan_alerts
    from twin_core.monitoring.windows import Window

    state = {"as_of": "2026-11-21T15:00:00+00:00", "signals": {"query_length": {
        "status": "resolved", "since": "2026-11-21T12:00:00+00:00", "last_alert": "2026-11-21T12:00:00+00:00",
        "resolved": "2026-11-21T15:00:00+00:00"}}}  # fmt: skip
    backfill = _result(3, {"query_length": 5.0, "latency_ms": 3.0})  # 12:00-13:00, before the newest: no page
    assert plan_alerts(state, backfill, repeat_h=24) == []
    old = Window(T0 + timedelta(hours=2), T0 + timedelta(hours=3))
    assert apply_delivered(state, old, [("drift", "query_length")]) is state
    assert _kinds(plan_alerts(state, _result(5, {"query_length": 5.0}), repeat_h=24)) == [("drift", "query_length")]


def test_repeat_zero_reminds_every_window_but_never_twice_in_one() -> None:
    from twin_core.monitoring.alert_state import apply_delivered, plan_alerts
    from twin_core.monitoring.windows import Window

    state = apply_delivered({}, Window(T0, T0 + timedelta(hours=1)), [("drift", "query_length")])
    assert _kinds(plan_alerts(state, _result(2, {"query_length": 5.0}), repeat_h=0)) == [("reminder", "query_length")]
    delivered_here = _result(1, {"query_length": 5.0})
    delivered_here["alerts"] = []  # new_alerts leaves out what alerts.json lists for the window
    assert plan_alerts(state, delivered_here, repeat_h=0) == []


def test_the_setting_and_its_bounds(monkeypatch: pytest.MonkeyPatch) -> None:
    from twin_core.settings import load_settings

    assert load_settings().monitor.alert_repeat_h == 24
    monkeypatch.setenv("TWIN_MONITOR_ALERT_REPEAT_H", "6")
    assert load_settings().monitor.alert_repeat_h == 6
    monkeypatch.setenv("TWIN_MONITOR_ALERT_REPEAT_H", "-1")
    with pytest.raises(Exception, match="TWIN_MONITOR_ALERT_REPEAT_H"):
        load_settings()


def _checked(settings: Any, *results: dict[str, Any]) -> Any:
    """Write each result as its window's result.json (what `twin monitor drift` leaves): record-alerts records
    only the signals of a window that was checked. The artifact store."""
    from twin_core.monitoring.evidently_reports import ReportWriter
    from twin_core.monitoring.windows import parse_window
    from twin_core.stores.artifacts import open_artifact_store

    artifacts = open_artifact_store(settings)
    for result in results:
        ReportWriter(artifacts, None, parse_window("1h", result["window"]["end"])).write_result(result)
    return artifacts


def test_record_alerts_writes_the_window_marker_then_the_state(settings: Any, twin_home: Path, twin) -> None:
    _checked(settings, _result(2, {"query_length": 5.0, "retrieval_score": 5.0}), _result(3, {"query_length": 0.2}))
    args = ["monitor", "record-alerts", "--window", "1h", "--end", "2026-11-21T12:00:00Z", "--author", ""]
    run = twin(*args, "--delivered", "drift:query_length,drift:retrieval_score")
    assert run.returncode == 0, run.stderr
    folder = twin_home / "artifacts" / "monitoring" / "all"
    marker = json.loads((folder / "20261121T110000Z-1h" / "alerts.json").read_text())
    assert {k: v["kind"] for k, v in marker.items()} == {"query_length": "drift", "retrieval_score": "drift"}
    state = json.loads((folder / "alert_state.json").read_text())
    assert state["as_of"] == "2026-11-21T12:00:00+00:00"
    assert {k: v["status"] for k, v in state["signals"].items()} == {"query_length": "open", "retrieval_score": "open"}
    assert run.result["open"] == ["query_length", "retrieval_score"] and run.result["late"] is False

    run = twin("monitor", "record-alerts", "--end", "2026-11-21T13:00:00Z", "--delivered", "resolved:query_length")
    assert run.returncode == 0, run.stderr
    assert run.result["open"] == ["retrieval_score"]

    for bad in ("drift", "paged:query_length", "drift:query length"):
        run = twin("monitor", "record-alerts", "--end", "2026-11-21T13:00:00Z", "--delivered", bad)
        assert run.returncode == 3 and "expected KIND:SIGNAL" in run.result["error"], bad


def test_the_check_lists_what_is_due_from_the_state_the_record_wrote(settings: Any) -> None:
    """``due_alerts`` (what `twin monitor drift --alert` lists in its result) reads the state the record wrote."""
    from twin_core.monitoring.alert_state import due_alerts, record_delivered
    from twin_core.monitoring.evidently_reports import ReportWriter
    from twin_core.monitoring.windows import Window
    from twin_core.stores.artifacts import open_artifact_store

    artifacts = open_artifact_store(settings)
    _checked(settings, _result(2, {"query_length": 5.0}))

    def writer(hour: int) -> ReportWriter:
        return ReportWriter(artifacts, None, Window(T0 + timedelta(hours=hour - 1), T0 + timedelta(hours=hour)))

    first = due_alerts(writer(2), _result(2, {"query_length": 5.0}), repeat_h=24)
    assert _kinds(first) == [("drift", "query_length")]
    record_delivered(artifacts, None, Window(T0 + timedelta(hours=1), T0 + timedelta(hours=2)), _kinds(first))
    assert due_alerts(writer(3), _result(3, {"query_length": 5.0}), repeat_h=24) == []
    resolved = due_alerts(writer(4), _result(4, {"query_length": 0.3}), repeat_h=24)
    assert _kinds(resolved) == [("resolved", "query_length")]
