"""Which drift alerts are due, across windows: ``monitoring/<author_slug|all>/alert_state.json``.

A signal is **open** from the delivered alert that reported it drifting until a later window scores it
within its threshold: that window sends one ``resolved`` alert and closes it. A distance still beyond its
threshold whose permutation p-value is not significant is not drifted, and not resolved either: it stays
open without a reminder (a p-value hovering near alpha would otherwise flip drift / resolved every window).
While it stays open, a drifting signal does not page every window: a ``reminder`` goes out when
``TWIN_MONITOR_ALERT_REPEAT_H`` hours (of window time, not of the clock: re-runs and backfills decide the
same) have passed since its last alert (0 = every window). A window that scores none of its signals (not
enough data) changes nothing.

Planning records nothing. `twin monitor drift --alert` lists the due alerts (``kind`` drift, reminder or
resolved), the DAG's ``check_drift`` delivers them, and `twin monitor record-alerts` records what a channel
took: the window's ``alerts.json`` first, this state last, so a step killed in between leaves the
alert due, never lost. The state is the present: a window ending before the newest one recorded (a late
re-run, a backfill of past hours) pages nothing, whatever its report says.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from twin_core.errors import InputError
from twin_core.monitoring.evidently_reports import PREFIX, ReportWriter, author_folder, read_json_object
from twin_core.monitoring.windows import Window

STATE_FILE = "alert_state.json"
KINDS = ("drift", "reminder", "resolved")
_UNCERTAINTY = ("detail", "p_value", "permutations", "interval", "confidence")


def state_key(author: str | None) -> str:
    return f"{PREFIX}/{author_folder(author)}/{STATE_FILE}"


def load_state(artifacts: Any, author: str | None) -> dict[str, Any]:
    """The author's state; one that is not ``{as_of, signals: {name: {...}}}`` is bad input naming the file
    (never read as empty: that would page every open signal again)."""
    key = state_key(author)
    state = read_json_object(artifacts, key) or {}
    signals, as_of = state.get("signals") or {}, state.get("as_of")
    try:
        ok = isinstance(signals, dict) and all(isinstance(v, dict) for v in signals.values())
        ok = ok and (as_of is None or datetime.fromisoformat(as_of).tzinfo is not None)
    except (TypeError, ValueError):
        ok = False
    if not ok:
        raise InputError(f"{artifacts.uri(key)}: not an alert state (as_of, signals): fix or delete it")
    return {"as_of": as_of, "signals": dict(signals)}


def _scored(entry: dict[str, Any] | None) -> bool:
    return entry is not None and "skipped" not in entry and entry.get("score") is not None


def _within(entry: dict[str, Any]) -> bool:
    """The score is back on the quiet side of its threshold (above a ``below`` signal's, at or under the others')."""
    score, threshold = entry["score"], entry.get("threshold")
    if threshold is None:
        return True
    return score >= threshold if entry.get("drift_when") == "below" else score <= threshold


def _resolved(name: str, entry: dict[str, Any], opened: dict[str, Any], result: dict[str, Any]) -> dict[str, Any]:
    keys = ("threshold", "method", "drift_when", "statistic", "rows", "reference_rows", "reference")
    return {
        "signal": name,
        "kind": "resolved",
        "value": entry["score"],
        **{k: entry.get(k) for k in keys},
        # the counts or the permutation test in words, and the uncertainty: a p-value, or a rate's interval
        **{k: entry[k] for k in _UNCERTAINTY if entry.get(k) is not None},
        "since": opened.get("since"),
        "window": result["window"],
        "report": result["report"],
        **({"html": result["html"]} if result.get("html") else {}),  # the readable page (older results: none)
    }


def plan_alerts(state: dict[str, Any], result: dict[str, Any], repeat_h: float) -> list[dict[str, Any]]:
    """The alerts due for a check ``result`` (its ``alerts``: the drifted signals not yet delivered for its
    window) given the ``state``: new drift, reminders, resolved signals. Pure: nothing is read or written."""
    if (result.get("reference") or {}).get("informational"):
        return []
    end = datetime.fromisoformat(result["window"]["end"])
    if state.get("as_of") and end < datetime.fromisoformat(state["as_of"]):
        return []  # a window before the newest recorded one: the state is the present
    signals = state.get("signals") or {}
    due: list[dict[str, Any]] = []
    for alert in result.get("alerts") or []:
        opened = signals.get(alert["signal"])
        if not opened or opened.get("status") != "open":
            due.append({**alert, "kind": "drift"})
        elif (end - datetime.fromisoformat(opened["last_alert"])).total_seconds() >= repeat_h * 3600:
            due.append({**alert, "kind": "reminder", "since": opened.get("since")})
    drifting = {d["signal"] for d in result.get("drifted") or []}
    for name, opened in sorted(signals.items()):
        entry = (result.get("signals") or {}).get(name)
        if opened.get("status") == "open" and name not in drifting and _scored(entry) and _within(entry):
            due.append(_resolved(name, entry, opened, result))
    return due


def due_alerts(writer: ReportWriter, result: dict[str, Any], repeat_h: float) -> list[dict[str, Any]]:
    """The alerts due for a check ``result`` (``plan_alerts`` over the author's state and the drifted
    signals not yet delivered for the window): what `twin monitor drift --alert` lists, before its
    result.json is written."""
    candidates = {**result, "alerts": writer.new_alerts(result["drifted"])}
    return plan_alerts(load_state(writer.artifacts, result.get("author")), candidates, repeat_h)


def parse_delivered(text: str) -> list[tuple[str, str]]:
    """``drift:query_length,resolved:latency_ms`` -> [(kind, signal), ...]; bad input raises InputError."""
    out: list[tuple[str, str]] = []
    for item in (part.strip() for part in (text or "").split(",")):
        if not item:
            continue
        kind, _, signal = item.partition(":")
        if kind not in KINDS or not signal or not signal.replace("_", "").isalnum():
            raise InputError(f"--delivered {item!r}: expected KIND:SIGNAL with KIND one of {', '.join(KINDS)}")
        out.append((kind, signal))
    return out


def check_delivered(writer: ReportWriter, author: str | None, delivered: list[tuple[str, str]]) -> None:
    """Only what the window's check reported can be recorded: an alert of a window never checked, or of a
    signal it does not have (a typo), would open a signal nothing ever resolves and move the state's
    ``as_of`` past the windows still to page."""
    if not delivered:
        return
    result = writer.result()
    if result is None:
        who = f"author {author!r}" if author else "every author"
        raise InputError(
            f"no drift check of the window {writer.window.key} ({who}) at {writer.location}: "
            "run `twin monitor drift` with the same --window, --end and --author first; nothing recorded"
        )
    known = result.get("signals") or {}
    unknown = sorted({signal for _, signal in delivered} - set(known))
    if unknown:
        raise InputError(
            f"--delivered {', '.join(unknown)}: not a signal of the window's check "
            f"({', '.join(sorted(known)) or 'none: it had not enough data'}); nothing recorded"
        )


def apply_delivered(state: dict[str, Any], window: Window, delivered: list[tuple[str, str]]) -> dict[str, Any]:
    """The state after ``delivered`` alerts of ``window`` (pure). Nothing delivered, or a window before the
    state's newest (its alerts were planned before a later window was recorded), changes nothing."""
    end = window.end.isoformat()
    if not delivered or (state.get("as_of") and window.end < datetime.fromisoformat(state["as_of"])):
        return state
    signals = {name: dict(s) for name, s in (state.get("signals") or {}).items()}
    for kind, name in delivered:
        current = signals.get(name) or {}
        if kind == "resolved":
            signals[name] = {**current, "status": "resolved", "resolved": end}
        elif current.get("status") == "open":
            signals[name] = {**current, "last_alert": end, "window": window.key}
        else:
            signals[name] = {"status": "open", "since": end, "last_alert": end, "window": window.key}
    return {"as_of": end, "signals": signals}


def record_delivered(
    artifacts: Any, author: str | None, window: Window, delivered: list[tuple[str, str]]
) -> dict[str, Any]:
    """Record delivered alerts: the window's alerts.json, then the author's alert state (last). Both are read
    and the alerts checked against the window's check before anything is written."""
    writer = ReportWriter(artifacts, author, window)
    check_delivered(writer, author, delivered)
    before = load_state(artifacts, author)
    marker = writer.mark_delivered(delivered) if delivered else None
    state = apply_delivered(before, window, delivered)
    if state is not before:
        artifacts.put_json(state_key(author), state)
    opened = sorted(name for name, s in state["signals"].items() if s.get("status") == "open")
    return {
        "window": window.as_dict(),
        "author": author,
        "recorded": [f"{kind}:{signal}" for kind, signal in delivered],
        "alerts": marker,
        "state": artifacts.uri(state_key(author)),
        "late": state is before and bool(delivered),
        "open": opened,
    }
