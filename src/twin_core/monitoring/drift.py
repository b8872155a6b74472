"""One drift check, as plan (pure) -> run -> record.

The alerting check compares a window of the inference log with recent production traffic: the previous
window(s) by default, or a pinned baseline window. The comparison with the training data (templated
instructions, long author passages: not what users type) is a separate, informational report in the
window's ``training/`` subfolder that never alerts. Either side below ``TWIN_MONITOR_MIN_ROWS`` is held
("not enough data"), never scored. Each signal reports its statistic and both sample sizes.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from twin_core.errors import InputError
from twin_core.monitoring.config import Signal, load_signals
from twin_core.monitoring.evidently_metrics import ScopeData, embedding_drift, value_report, value_scores
from twin_core.monitoring.evidently_reports import ReportWriter
from twin_core.monitoring.scopes import read_logs, traffic_scopes, training_scopes
from twin_core.monitoring.text_tools import TextTools
from twin_core.monitoring.windows import Window, parse_time
from twin_core.settings import Settings

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
    ref_window = None
    if reference == "previous":
        ref_window = window.previous(cfg.previous_windows)
    elif reference == "baseline":
        if baseline_end is None:
            raise InputError("--reference baseline needs --baseline-end (the end of the pinned baseline window)")
        end = baseline_end if isinstance(baseline_end, datetime) else parse_time(baseline_end, option="--baseline-end")
        ref_window = Window(end - cfg.previous_windows * window.length, end)
        if end > window.start:
            raise InputError(f"--baseline-end {end.isoformat()} is after the checked window's start")
    scopes = _SCOPES.get(reference, _TRAFFIC_SCOPES)
    chosen = tuple(s for s in (signals or load_signals(settings)) if s.scope in scopes)
    return DriftPlan(window, reference, ref_window, author, chosen, cfg.min_rows, cfg.embedding_sample, alert, plots)


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
        writer.write_result(result)
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
    scores, reports = _score(plan, scopes, tools, artifacts, writer)
    return _record(plan, writer, result, scopes, scores, reports)


def _result_head(plan: DriftPlan, writer: ReportWriter, rows: int) -> dict[str, Any]:
    return {
        "window": plan.window.as_dict(),
        "author": plan.author,
        "rows": rows,
        "reference": plan.describe(),
        "report": writer.location,
        "signals": {},
        "drifted": [],
        "alerts": [],
    }


def _score(
    plan: DriftPlan, scopes: dict[str, ScopeData], tools: TextTools, artifacts: Any, writer: ReportWriter
) -> tuple[dict[str, float | None], dict[str, str]]:
    """Run the Evidently metrics of every scope with enough data; write their reports."""
    scores: dict[str, float | None] = {}
    reports: dict[str, str] = {}
    for scope, data in scopes.items():
        scoped = [s for s in plan.signals if s.scope == scope]
        if data.skipped or not scoped:
            continue
        values = [s for s in scoped if s.kind != "embedding"]
        if values and plan.plots:
            snapshot, found = value_report(values, data, tools)
            reports[scope] = writer.write_snapshot(scope, snapshot)
            scores.update(found)
        elif values:
            scores.update(value_scores(values, data, tools))
        for s in (s for s in scoped if s.kind == "embedding"):
            snapshot, scores[s.name] = embedding_drift(
                s, data, tools, size=plan.embedding_sample, artifacts=artifacts, plots=plan.plots
            )
            if snapshot is not None:
                reports[s.name] = writer.write_snapshot(s.name, snapshot)
    return scores, reports


def signal_entry(signal: Signal, data: ScopeData, score: float | None) -> dict[str, Any]:
    """One signal's line of the result: statistic, score, threshold, both sample sizes, the decision."""
    usable = score is not None and not (isinstance(score, float) and math.isnan(score))
    method = signal.method + (f"/{signal.dist}" if signal.kind == "embedding" and signal.method == "distance" else "")
    return {
        "scope": data.scope,
        "reference": data.reference_kind,
        "method": method,
        "statistic": signal.statistic,
        "threshold": signal.threshold,
        "score": round(float(score), 6) if usable else None,  # type: ignore[arg-type]
        "drifted": bool(usable and signal.drifted(float(score))),  # type: ignore[arg-type]
        "drift_when": "below" if signal.pvalue else "above",
        "rows": len(data.current),
        "reference_rows": len(data.reference),
    }


def _record(
    plan: DriftPlan,
    writer: ReportWriter,
    result: dict[str, Any],
    scopes: dict[str, ScopeData],
    scores: dict[str, float | None],
    reports: dict[str, str],
) -> dict[str, Any]:
    """Signals, verdict and (for a traffic check with ``alert``) the new alerts; result.json last."""
    for s in plan.signals:
        data = scopes[s.scope]
        if data.skipped:
            result["signals"][s.name] = {"scope": s.scope, "skipped": data.skipped, "threshold": s.threshold}
            continue
        entry = result["signals"][s.name] = signal_entry(s, data, scores.get(s.name))
        if entry["drifted"]:
            keys = ("score", "threshold", "method", "statistic", "drift_when", "rows", "reference_rows", "reference")
            result["drifted"].append({"signal": s.name, **{k: entry[k] for k in keys}})
    result["reports"] = reports
    scored = [e for e in result["signals"].values() if "skipped" not in e]
    if plan.informational:
        result["verdict"] = "informational"  # the training data is not traffic: differences, never alerts
        result["differences"], result["drifted"] = result["drifted"], []
    elif not scored:
        result["verdict"] = "not_enough_data"
        result["reason"] = "; ".join(sorted({e["skipped"] for e in result["signals"].values()}))
    else:
        result["verdict"] = "drift" if result["drifted"] else "no_drift"
    if plan.alert and result["drifted"]:
        result["alerts"] = writer.new_alerts(result["drifted"])
    writer.write_result(result)
    return result
