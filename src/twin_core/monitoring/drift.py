"""One drift check, as plan (pure) -> run -> record.

The alerting check compares a window of the inference log with recent production traffic: the previous
window(s) by default, or a pinned baseline window. The comparison with the training data (templated
instructions, long author passages: not what users type) is a separate, informational report in the
window's ``training/`` subfolder that never alerts. Either side below ``TWIN_MONITOR_MIN_ROWS`` is held
("not enough data"), never scored: per scope (its rows) and per signal (the values it can use: a request
without retrieved chunks has no retrieval score). A held signal is ``status: held`` with the reason and
its counts, never "not drifted". Each scored signal reports its statistic, the values used on both sides
(``rows``, ``reference_rows``) and its uncertainty: the ``p_value`` of a p-value test, the ``interval`` of
a rate or coverage, and for a distance the ``p_value`` of a seeded permutation test of that distance
(``permutations``, ``permuted_rows``, ``detail``): a distance drifts only when it is above its threshold
AND that p-value is below ``1 - confidence`` (0.05), so noise in a small window does not page. The
retrieval coverage is decided on the window alone (``rates.coverage_measure``): a window where none of its
answered requests retrieved a chunk drifts (it pages) even when the reference is too short to compare.

Verdicts: ``drift`` (a scored signal drifted), ``no_drift`` (every signal scored, none drifted),
``partial`` (no drift among the scored signals, some held: listed under ``held``, and in ``reason``),
``not_enough_data`` (nothing scored), ``informational`` (``--reference training``).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from twin_core.errors import InputError
from twin_core.monitoring.alert_state import due_alerts
from twin_core.monitoring.config import VALUE_TYPES, Signal, load_signals
from twin_core.monitoring.evidently_metrics import embedding_drift, value_report, value_scores
from twin_core.monitoring.evidently_reports import ReportWriter
from twin_core.monitoring.measures import Measure, ScopeData
from twin_core.monitoring.rates import coverage_measure, rate_measure
from twin_core.monitoring.scopes import read_logs, traffic_scopes, training_scopes
from twin_core.monitoring.text_tools import TextTools
from twin_core.monitoring.windows import Window, parse_time
from twin_core.settings import Settings

log = logging.getLogger(__name__)
REFERENCES = ("previous", "baseline", "training")
_SCOPES = {"training": ("queries", "answers", "documents")}
_TRAFFIC_SCOPES = ("queries", "answers", "operations")


@dataclass(frozen=True)
class DriftPlan:
    """What one check compares, with which signals and minimums (no store is read to make it)."""

    window: Window
    reference: str  # previous | baseline | training
    reference_window: Window | None  # the traffic compared with (None for training)
    author: str | None
    signals: tuple[Signal, ...]
    min_rows: int
    embedding_sample: int
    alert: bool
    plots: bool
    alert_repeat_h: float = 24.0  # reminders of a signal still drifting (TWIN_MONITOR_ALERT_REPEAT_H)

    @property
    def informational(self) -> bool:
        return self.reference == "training"

    def describe(self) -> dict[str, Any]:
        out: dict[str, Any] = {"kind": self.reference, "informational": self.informational, "min_rows": self.min_rows}
        if self.reference_window is not None:
            out["window"] = self.reference_window.as_dict()
        return out


def plan_drift_check(
    settings: Settings,
    window: Window,
    *,
    author: str | None = None,
    reference: str | None = None,
    baseline_end: str | datetime | None = None,
    alert: bool = False,
    plots: bool = False,
    signals: list[Signal] | None = None,
) -> DriftPlan:
    """The plan: reference kind and window, the signals of its scopes, the minimums."""
    cfg = settings.monitor
    reference = reference or cfg.reference
    if reference not in REFERENCES:
        raise InputError(f"--reference {reference!r}: expected one of {', '.join(REFERENCES)}")
    ref_window = _reference_window(window, reference, baseline_end, cfg.previous_windows)
    scopes = _SCOPES.get(reference, _TRAFFIC_SCOPES)
    chosen = tuple(s for s in (signals or load_signals(settings)) if s.scope in scopes)
    return DriftPlan(
        window,
        reference,
        ref_window,
        author,
        chosen,
        cfg.min_rows,
        cfg.embedding_sample,
        alert,
        plots,
        settings.monitor.alert_repeat_h,
    )


def _reference_window(window: Window, reference: str, baseline_end: str | datetime | None, count: int) -> Window | None:
    """The traffic compared with: the ``count`` windows before, or the pinned baseline (None for training).
    A --baseline-end with another reference is refused: ignoring it would check against what the user
    did not ask for."""
    if isinstance(baseline_end, str) and not baseline_end.strip():
        baseline_end = None
    if reference != "baseline":
        if baseline_end is not None:
            raise InputError(f"--baseline-end is only read with --reference baseline (got --reference {reference})")
        return window.previous(count) if reference == "previous" else None
    if baseline_end is None:
        raise InputError("--reference baseline needs --baseline-end (the end of the pinned baseline window)")
    end = baseline_end if isinstance(baseline_end, datetime) else parse_time(baseline_end, option="--baseline-end")
    try:
        ref_window = Window(end - count * window.length, end)
    except OverflowError:
        raise InputError(f"--baseline-end {end.isoformat()}: the baseline window starts before the year 1") from None
    if end > window.start:
        raise InputError(f"--baseline-end {end.isoformat()} is after the checked window's start")
    return ref_window


def run_drift_check(
    settings: Settings,
    window: Window,
    *,
    tools: TextTools,
    warehouse: Any,
    artifacts: Any,
    author: str | None = None,
    reference: str | None = None,
    baseline_end: str | datetime | None = None,
    alert: bool = False,
    plots: bool = False,
) -> dict[str, Any]:
    """Check ``window``: write the reports, return the result (drifted signals, new alerts)."""
    plan = plan_drift_check(
        settings, window, author=author, reference=reference, baseline_end=baseline_end, alert=alert, plots=plots
    )
    writer = ReportWriter(artifacts, author, window, "training" if plan.informational else "")
    current_rows = read_logs(warehouse, window, author)
    result = _result_head(plan, writer, len(current_rows))
    if len(current_rows) < plan.min_rows:
        result.update(
            verdict="not_enough_data",
            reason=f"{len(current_rows)} requests in the window (< {plan.min_rows}): no drift check",
        )
        writer.write_check(result)  # report.html, then result.json
        log.info("drift check %s: %s (%s); %s", window.key, result["verdict"], result["reason"], result["html"])
        return result
    if plan.informational:
        scopes, info = training_scopes(
            current_rows, warehouse=warehouse, artifacts=artifacts, window=window, author=author, min_rows=plan.min_rows
        )
        result["reference"].update(info)
    else:
        assert plan.reference_window is not None
        reference_rows = read_logs(warehouse, plan.reference_window, author)
        result["reference"]["requests"] = len(reference_rows)
        scopes = traffic_scopes(current_rows, reference_rows, plan.reference, plan.min_rows)
    measures, reports = _score(plan, scopes, tools, artifacts, writer)
    return _record(plan, writer, result, scopes, measures, reports)


def _result_head(plan: DriftPlan, writer: ReportWriter, rows: int) -> dict[str, Any]:
    return {
        "window": plan.window.as_dict(),
        "author": plan.author,
        "rows": rows,
        "reference": plan.describe(),
        "report": writer.location,
        "html": writer.html_location,  # the readable page (report.html), written with result.json
        "signals": {},
        "drifted": [],
        "held": [],
        "alerts": [],
    }


def _score(
    plan: DriftPlan, scopes: dict[str, ScopeData], tools: TextTools, artifacts: Any, writer: ReportWriter
) -> tuple[dict[str, Measure], dict[str, str]]:
    """Run the Evidently metrics (and the rate tests) of every scope with enough data; write their reports."""
    measures: dict[str, Measure] = {}
    reports: dict[str, str] = {}
    for scope, data in scopes.items():
        scoped = [s for s in plan.signals if s.scope == scope]
        minimum = data.minimum or plan.min_rows
        for s in (s for s in scoped if s.kind == "coverage"):  # the window alone: even when the reference is short
            measures[s.name] = coverage_measure(s, data, minimum)
        if data.skipped or not scoped:
            continue
        values = [s for s in scoped if s.kind in VALUE_TYPES]
        if values and plan.plots:
            snapshot, found = value_report(values, data, tools, minimum)
            if snapshot is not None:
                reports[scope] = writer.write_snapshot(scope, snapshot)
            measures.update(found)
        elif values:
            measures.update(value_scores(values, data, tools, minimum))
        for s in (s for s in scoped if s.kind == "rate"):
            measures[s.name] = rate_measure(s, data, minimum)
        for s in (s for s in scoped if s.kind == "embedding"):
            snapshot, measures[s.name] = embedding_drift(
                s, data, tools, size=plan.embedding_sample, artifacts=artifacts, plots=plan.plots, minimum=minimum
            )
            if snapshot is not None:
                reports[s.name] = writer.write_snapshot(s.name, snapshot)
    return measures, reports


def signal_entry(signal: Signal, data: ScopeData, found: Measure | None) -> dict[str, Any]:
    """One signal's line of the result: statistic, score, threshold, the values used on both sides, the
    p-value or interval where the method gives one, and the decision: ``status`` ``scored``, or ``held``
    (``skipped``: why; ``drifted`` None, never "not drifted"). A distance drifts when it is above its
    threshold AND its permutation p-value is below ``1 - confidence``."""
    method = signal.method + (f"/{signal.dist}" if signal.kind == "embedding" and signal.method == "distance" else "")
    if found is None:  # the whole scope is held: its rows are the scope's
        found = Measure(len(data.current), len(data.reference), held=data.skipped or "not scored")
    held = found.held or (None if found.score is not None else "not scored")
    entry: dict[str, Any] = {
        "scope": data.scope,
        "reference": data.reference_kind,
        "method": method,
        "statistic": signal.statistic,
        "threshold": signal.threshold,
        "drift_when": "below" if signal.below else "above",
        "rows": found.rows,
        "reference_rows": found.reference_rows,
        "status": "held" if held else "scored",
        "score": None,
        "drifted": None,
        "p_value": None,
        "interval": None,
        "confidence": None,
    }
    entry.update(found.details)
    if held or found.score is None:
        entry["skipped"] = held
        return entry
    entry["score"] = round(found.score, 6)
    if signal.pvalue:
        entry["p_value"] = entry["score"]
    entry["drifted"] = signal.drifted(found.score, entry["p_value"])
    if entry["drifted"] is None:  # a distance above its threshold without the p-value to decide it: held
        why = f"distance {found.score:.4g} above the threshold {signal.threshold:g} with no p-value: not decided"
        entry.update(status="held", skipped=why)
    return entry


# What a drifted signal (and so its alert) carries from its entry.
_DRIFT_KEYS = ("score", "threshold", "method", "statistic", "drift_when", "rows", "reference_rows", "reference")
_DECISION_KEYS = ("p_value", "interval", "confidence")
_RATE_KEYS = ("rate", "reference_rate", "failures", "reference_failures", "increase")
_COVERAGE_KEYS = ("share", "reference_share", "retrieved", "reference_retrieved", "detail")
_PERMUTATION_KEYS = ("permutations", "permuted_rows")  # a distance's test ("detail" says it in words)


def _record(
    plan: DriftPlan,
    writer: ReportWriter,
    result: dict[str, Any],
    scopes: dict[str, ScopeData],
    measures: dict[str, Measure],
    reports: dict[str, str],
) -> dict[str, Any]:
    """Signals, verdict and (for a traffic check with ``alert``) the new alerts; report.html, then result.json
    last."""
    for s in plan.signals:
        data = scopes[s.scope]
        found = None if data.skipped and not s.absolute else measures.get(s.name)
        entry = result["signals"][s.name] = signal_entry(s, data, found)
        if entry["status"] == "held":
            result["held"].append(
                {
                    "signal": s.name,
                    "reason": entry["skipped"],
                    "rows": entry["rows"],
                    "reference_rows": entry["reference_rows"],
                }
            )
        elif entry["drifted"]:
            extra = (k for k in (*_RATE_KEYS, *_COVERAGE_KEYS, *_PERMUTATION_KEYS) if k in entry)
            keys = (*_DRIFT_KEYS, *_DECISION_KEYS, *extra)
            result["drifted"].append({"signal": s.name, **{k: entry[k] for k in keys}})
    result["reports"] = reports
    _verdict(plan, result)
    if plan.alert:  # the alerts due (new drift, reminders, resolved signals), listed, not recorded
        result["alerts"] = due_alerts(writer, result, plan.alert_repeat_h)
    writer.write_check(result)
    log.info("%s", summary(result, alerts_listed=plan.alert))
    return result


def summary(result: dict[str, Any], *, alerts_listed: bool = True) -> str:
    """One line for the task log: the window, the verdict with its counts, the alerts due, where the result is."""
    signals = result["signals"].values()
    scored = sum(1 for e in signals if e["status"] == "scored")
    drifted = ", ".join(d["signal"] for d in result["drifted"] or result.get("differences") or []) or "none"
    due = ", ".join(f"{a['kind']}:{a['signal']}" for a in result["alerts"]) or "none"
    due = due if alerts_listed else "not listed (no --alert)"
    return (
        f"drift check {result['window']['key']} against {result['reference']['kind']} "
        f"({result['rows']} requests): {result['verdict']}; {scored} of {len(result['signals'])} signals scored, "
        f"{len(result['held'])} held, drifted: {drifted}; alerts due: {due}; {result.get('html') or result['report']}"
    )


def _verdict(plan: DriftPlan, result: dict[str, Any]) -> None:
    """``drift`` (a scored signal drifted), ``no_drift`` (every signal scored, none drifted), ``partial``
    (none of the scored drifted, some held: not checked), ``not_enough_data`` (none scored), or
    ``informational`` (against the training data: never alerts)."""
    signals = result["signals"]
    scored = [n for n, e in signals.items() if e["status"] == "scored"]
    held = "; ".join(f"{h['signal']}: {h['reason']}" for h in result["held"])
    if plan.informational:
        result["verdict"] = "informational"  # the training data is not traffic: differences, never alerts
        result["differences"], result["drifted"] = result["drifted"], []
        if not scored:  # the verdict alone would not say that nothing was compared
            result["reason"] = "nothing compared: " + "; ".join(sorted({e["skipped"] for e in signals.values()}))
    elif not scored:
        result["verdict"] = "not_enough_data"
        result["reason"] = "; ".join(sorted({e["skipped"] for e in signals.values()}))
    elif result["drifted"]:
        result["verdict"] = "drift"
    elif result["held"]:
        result["verdict"] = "partial"
        result["reason"] = f"no drift in the {len(scored)} scored signal(s); held, not checked: {held}"
    else:
        result["verdict"] = "no_drift"
