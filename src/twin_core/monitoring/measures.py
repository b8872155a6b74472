"""What one signal was decided on: the values used on each side, and the score or why it was held.

A signal is scored only on the values it can use (a request without retrieved chunks has no retrieval
score; a rejected request is neither a success nor a server failure), and it reports those counts, not
the scope's rows. Either side below the minimum is held, with the counts in the reason: held is "not
checked", never "not drifted".
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from twin_core.domain.inference import QueryEmbedding
from twin_core.monitoring.config import Signal

# How a held signal's reason names its values (default: "<column> values").
_VALUES = {
    "retrieval_score": "retrieval scores",
    "latency_ms": "latencies",
    "outcome": "server outcomes (ok, error, unavailable)",
    "retrieved": "requests the server answered",
}


@dataclass
class ScopeData:
    scope: str
    reference_kind: str  # previous | baseline | training | training_corpus
    current: Any  # pandas DataFrame
    reference: Any
    skipped: str | None = None
    known: dict[tuple[str, str], QueryEmbedding] = field(default_factory=dict)  # (model id, text) -> logged embedding
    minimum: int | None = None  # values each signal needs per side (None: the check's min_rows)


@dataclass
class Measure:
    """One signal's decision data. ``rows``/``reference_rows``: the values actually used (after dropping
    missing ones, after sampling); ``score`` None when ``held``; ``details``: the p-value, interval and
    counts the method gives (copied into the result entry)."""

    rows: int
    reference_rows: int
    score: float | None = None
    held: str | None = None
    details: dict[str, Any] = field(default_factory=dict)


def _side(used: int, total: int, what: str, where: str, unit: str, minimum: int) -> str:
    if used == 0:
        return f"no {what} {where} (0 of {total} {unit})"
    return f"{used} {what} {where} (of {total} {unit}; < {minimum}): not enough data"


def measure_or_hold(signal: Signal, data: ScopeData, rows: int, reference_rows: int, minimum: int) -> Measure:
    """A Measure to score (``held`` None) when both sides have ``minimum`` usable values, else held. A
    signal decided on the window alone (``signal.absolute``) needs them in the window only."""
    what = _VALUES.get(signal.column, f"{signal.column} values")
    unit = "requests" if data.scope == "operations" else "rows"
    held = None
    if rows < minimum:
        held = _side(rows, len(data.current), what, "in the window", unit, minimum)
    elif reference_rows < minimum and not signal.absolute:
        held = _side(
            reference_rows, len(data.reference), what, f"in the reference ({data.reference_kind})", unit, minimum
        )
    return Measure(rows, reference_rows, held=held)


def scored(found: Measure, score: Any) -> Measure:
    """``found`` with its score; a score that is missing or not a finite number holds it instead."""
    try:
        value = float(score)
    except (TypeError, ValueError):
        value = float("nan")
    if not math.isfinite(value):
        found.held = f"the method gave no finite score ({score!r}) on {found.rows} and {found.reference_rows} values"
        return found
    found.score = value
    return found
