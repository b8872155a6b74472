"""The server error rate: a one-sided decision on its increase, with the uncertainty stated.

Only server failures count: ``error`` and ``unavailable`` (``serving/transformer.py``, the RAG
pipeline) over the requests the server answered (``ok`` + failures). A ``rejected`` request (the
client's 4xx) or a ``cancelled`` one (the client went away) counts in neither. The score is the lower
bound of Newcombe's hybrid score interval (Wilson intervals of both proportions, Newcombe 1998, method
10) of ``current - reference``: it drifts when that bound is above the threshold (the smallest increase
worth an alert), so fewer errors than before (a recovery) never alert, and a few failures in a small
window do not either.

The retrieval coverage (``coverage_measure``) is decided on the window alone: the share of the requests
the server answered (``ok``) that retrieved at least one chunk. Its score is the upper bound of the share's Wilson
interval: it drifts when that bound is below the threshold, so a window where none of 412 answered
requests retrieved anything (bound 0.0092) pages whatever the reference was (a retrieval broken in both
windows is still broken), and a few requests without chunks never do. Fewer answered requests than the
minimum hold it, and so do too few for even "none retrieved" to reach below the threshold.
"""

from __future__ import annotations

from typing import Any

from twin_core.monitoring.config import Signal
from twin_core.monitoring.measures import Measure, ScopeData, measure_or_hold, scored

FAILURE = "error"  # the outcome of a server failure (scopes.log_frame); "ok" the other counted outcome


def wilson(k: int, n: int, confidence: float) -> tuple[float, float]:
    """The Wilson score ``confidence`` interval of the share ``k / n`` (statsmodels)."""
    from statsmodels.stats.proportion import proportion_confint

    low, high = proportion_confint(k, n, alpha=1 - confidence, method="wilson")
    return float(low), float(high)


def newcombe(k1: int, n1: int, k2: int, n2: int, confidence: float) -> tuple[float, float, float]:
    """``p1 - p2`` and its two-sided ``confidence`` interval by Newcombe's hybrid score method (statsmodels'
    ``newcomb``: the Wilson intervals of both shares, Newcombe 1998, method 10)."""
    from statsmodels.stats.proportion import confint_proportions_2indep

    low, high = confint_proportions_2indep(k1, n1, k2, n2, method="newcomb", compare="diff", alpha=1 - confidence)
    return k1 / n1 - k2 / n2, float(low), float(high)


def _answered(frame: Any, column: str) -> Any:
    """``column`` of the requests the server answered with an answer (outcome ``ok``): a failed request
    retrieved nothing because it failed (the error rate pages for it), and the client's rejected or
    cancelled ones are not the server's."""
    return frame.loc[frame["outcome"] == "ok", column]


def coverage_measure(signal: Signal, data: ScopeData, minimum: int) -> Measure:
    """The share of the window's answered requests that retrieved a chunk (upper bound of its interval), or
    held; the reference's share is reported, never required."""
    cur, ref = _answered(data.current, signal.column), _answered(data.reference, signal.column)
    found = measure_or_hold(signal, data, len(cur), len(ref), minimum)
    if found.held:
        return found
    n, k = len(cur), int((cur > 0).sum())
    low, high = wilson(k, n, signal.confidence)
    found.details.update(
        share=round(k / n, 6),
        retrieved=k,
        interval=[round(low, 6), round(high, 6)],
        confidence=signal.confidence,
        detail=f"{k} of {n} requests retrieved a chunk ({signal.confidence * 100:g}% interval of the share: "
        f"{low:.4f} to {high:.4f})",
    )
    if len(ref):
        hits = int((ref > 0).sum())
        found.details.update(reference_share=round(hits / len(ref), 6), reference_retrieved=hits)
    floor = wilson(0, n, signal.confidence)[1]  # the lowest bound n requests can give: none retrieved
    if floor >= signal.threshold:
        found.held = (
            f"{n} requests the server answered in the window: even 0 of {n} would leave the upper bound at "
            f"{floor:.4f} (>= {signal.threshold}): not enough data"
        )
        return found
    return scored(found, high)


def rate_measure(signal: Signal, data: ScopeData, minimum: int) -> Measure:
    """The increase of the share of server failures, current against reference, or held."""
    cur, ref = data.current[signal.column].dropna(), data.reference[signal.column].dropna()
    found = measure_or_hold(signal, data, len(cur), len(ref), minimum)
    if found.held:
        return found
    k1, k2 = int((cur == FAILURE).sum()), int((ref == FAILURE).sum())
    diff, low, high = newcombe(k1, len(cur), k2, len(ref), signal.confidence)
    details: dict[str, Any] = {
        "rate": round(k1 / len(cur), 6),
        "reference_rate": round(k2 / len(ref), 6),
        "failures": k1,
        "reference_failures": k2,
        "increase": round(diff, 6),
        "interval": [round(low, 6), round(high, 6)],
        "confidence": signal.confidence,
    }
    found.details.update(details)
    return scored(found, low)
