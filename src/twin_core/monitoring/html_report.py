"""The drift check's own page: ``report.html`` beside ``result.json``, for every verdict.

What the on-call person opening the report folder from an alert reads first: the window and the
reference with their row counts, the verdict and its reason, one row per signal (scored / held and why,
the statistic and its value, both sample sizes, the p-value with its permutations or the interval with
its confidence, drifted or not), the alerts due, links to Evidently's reports (``--plots``) and where
``result.json`` is. Self-contained (inline CSS, no script, no external asset); every value from the
result is HTML-escaped (a logged query is user input). Rendered from the result alone: no Evidently
call, no model, so it costs next to nothing on the hourly check. It is written just before
``result.json``: only ``result.json`` marks a complete check (``evidently_reports``).
"""

from __future__ import annotations

from collections.abc import Iterable
from html import escape
from typing import Any

_STYLE = (
    "body{font-family:system-ui,sans-serif;margin:2rem auto;max-width:80rem;color:#222;line-height:1.4}"
    "table{border-collapse:collapse;margin:1rem 0;width:100%}td,th{border:1px solid #ccc;padding:.35rem .6rem;"
    "text-align:left;vertical-align:top}th{background:#f4f4f4}.num{text-align:right;"
    "font-variant-numeric:tabular-nums}.drift{color:#b00020;font-weight:600}.held{color:#8a6d00;font-weight:600}"
    ".ok{color:#0a7d29;font-weight:600}.banner{padding:.8rem 1rem;border-radius:6px;font-size:1.2rem;"
    "background:#f4f4f4}.banner.drift{background:#fde7e9}.banner.no_drift{background:#e6f4ea}"
)
_SIGNAL_HEAD = (
    "signal",
    "scope",
    "status",
    "statistic",
    "value",
    "threshold",
    "n (window)",
    "n (reference)",
    "p-value / interval",
    "drifted",
)


def _e(value: Any) -> str:
    """``value`` as escaped text (None: an en dash)."""
    if value is None:
        return "&ndash;"
    if isinstance(value, float):
        return escape(f"{value:.4g}")
    return escape(str(value))


def _row(cells: Iterable[str], tag: str = "td") -> str:
    return "<tr>" + "".join(f"<{tag}>{c}</{tag}>" for c in cells) + "</tr>"


def _window(window: dict[str, Any] | None) -> str:
    if not window:
        return "&ndash;"
    return f"{_e(window.get('start'))} .. {_e(window.get('end'))} ({_e(window.get('length'))})"


def _uncertainty(entry: dict[str, Any]) -> str:
    """The p-value (with its permutations) or the interval with its confidence."""
    parts = []
    if entry.get("p_value") is not None:
        perms = entry.get("permutations")
        parts.append(f"p = {_e(entry['p_value'])}" + (f" ({_e(perms)} permutations)" if perms else ""))
    if entry.get("interval") is not None:
        low, high = (list(entry["interval"]) + [None, None])[:2]
        conf = entry.get("confidence")
        parts.append(f"[{_e(low)}, {_e(high)}]" + (f" at {_e(conf)} confidence" if conf is not None else ""))
    return "<br>".join(parts) or "&ndash;"


def _signal_row(name: str, entry: dict[str, Any]) -> str:
    status = entry.get("status", "?")
    status_cell = f'<span class="{"held" if status == "held" else "ok"}">{_e(status)}</span>'
    if entry.get("skipped"):
        status_cell += f": {_e(entry['skipped'])}"
    statistic = _e(entry.get("method"))
    if entry.get("statistic"):
        statistic += f"<br><small>{_e(entry['statistic'])}</small>"
    if entry.get("detail"):
        statistic += f"<br><small>{_e(entry['detail'])}</small>"
    if entry.get("rate") is not None:  # the error rate: both sides' failures
        statistic += (
            f"<br><small>{_e(entry.get('failures'))} of {_e(entry.get('rows'))} failed ({_e(entry['rate'])}) vs "
            f"{_e(entry.get('reference_failures'))} of {_e(entry.get('reference_rows'))} "
            f"({_e(entry.get('reference_rate'))})</small>"
        )
    drifted = entry.get("drifted")
    drift_cell = {True: '<span class="drift">yes</span>', False: "no"}.get(drifted, "not decided")
    threshold = f"{_e(entry.get('threshold'))} (drifts {_e(entry.get('drift_when', 'above'))})"
    return _row(
        (
            _e(name),
            _e(entry.get("scope")),
            status_cell,
            statistic,
            f'<span class="num">{_e(entry.get("score"))}</span>',
            threshold,
            _e(entry.get("rows")),
            _e(entry.get("reference_rows")),
            _uncertainty(entry),
            drift_cell,
        )
    )


def _signals(result: dict[str, Any]) -> str:
    signals = result.get("signals") or {}
    if not signals:
        return "<p>No signal was scored: the window has too few requests (see the reason above).</p>"
    rows = "".join(_signal_row(name, entry) for name, entry in signals.items())
    return f"<table>{_row(_SIGNAL_HEAD, 'th')}{rows}</table>"


def _reference(result: dict[str, Any]) -> str:
    ref = result.get("reference") or {}
    if ref.get("informational"):
        versions = ", ".join(map(str, ref.get("dataset_versions") or [])) or "none"
        docs = f"; {_e(ref['new_documents'])} new documents" if "new_documents" in ref else ""
        return f"the training data (instruct dataset versions: {_e(versions)}{docs}): informational, never alerts"
    requests = ref.get("requests")
    counted = f"{_e(requests)} requests" if requests is not None else "not read (too few requests in the window)"
    return f"{_e(ref.get('kind'))} traffic, {_window(ref.get('window'))}: {counted}"


def _alerts(result: dict[str, Any]) -> str:
    alerts = result.get("alerts") or []
    if not alerts:
        return "<p>None due (alerts are listed only with <code>--alert</code>, as the hourly DAG runs it).</p>"
    head = _row(("kind", "signal", "value", "threshold", "p-value / interval"), "th")
    rows = "".join(
        _row((_e(a.get("kind")), _e(a.get("signal")), _e(a.get("value")), _e(a.get("threshold")), _uncertainty(a)))
        for a in alerts
    )
    return f"<table>{head}{rows}</table>"


def _links(result: dict[str, Any], result_name: str, result_at: str) -> str:
    reports = result.get("reports") or {}
    items = [f'<li><a href="{escape(name)}.html">{_e(name)}.html</a> (Evidently)</li>' for name in reports]
    items.append(f'<li><a href="{escape(result_name)}">{_e(result_name)}</a>: the full result, at {_e(result_at)}</li>')
    note = "" if reports else "<p>Evidently's HTML reports are written only with <code>--plots</code>.</p>"
    return f"{note}<ul>{''.join(items)}</ul>"


def render_report(result: dict[str, Any], *, result_name: str, result_at: str) -> str:
    """The check's page from its ``result`` (any verdict), every value escaped. ``result_name`` is the
    result file beside the page (linked by that relative name, as Evidently's reports are), ``result_at``
    where it is in the artifact store."""
    window = result.get("window") or {}
    verdict = str(result.get("verdict", "?"))
    drifted = result.get("drifted") or result.get("differences") or []
    names = ", ".join(str(d.get("signal")) for d in drifted)
    reason = f"<p>{_e(result['reason'])}</p>" if result.get("reason") else ""
    who = f" for {_e(result['author'])}" if result.get("author") else " for every author"
    return (
        '<!doctype html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>Drift check {_e(window.get('key'))}: {_e(verdict)}</title><style>{_STYLE}</style></head><body>"
        f"<h1>Drift check {_e(window.get('key'))}{who}</h1>"
        f"<p>Window {_window(window)}: <b>{_e(result.get('rows'))} requests</b><br>"
        f"Reference: {_reference(result)}</p>"
        f'<div class="banner {escape(verdict)}">Verdict: <b>{_e(verdict)}</b>'
        + (f" &mdash; {'differences' if result.get('differences') else 'drifted'}: {_e(names)}" if names else "")
        + f"</div>{reason}<h2>Signals</h2>{_signals(result)}<h2>Alerts due</h2>{_alerts(result)}"
        f"<h2>Files</h2>{_links(result, result_name, result_at)}"
        f"<p><small>Written just before {_e(result_name)}; without {_e(result_name)} beside it the check did "
        "not complete.</small></p></body></html>\n"
    )
