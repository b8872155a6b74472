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

import math
from statistics import NormalDist
from typing import Any

from twin_core.monitoring.config import Signal
from twin_core.monitoring.measures import Measure, ScopeData, measure_or_hold, scored

FAILURE = "error"  # the outcome of a server failure (scopes.log_frame); "ok" the other counted outcome


def wilson(failures: int, n: int, z: float) -> tuple[float, float]:
    """Wilson score interval of the proportion ``failures / n``."""
    p = failures / n
    denominator = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denominator
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denominator
    return max(0.0, centre - half), min(1.0, centre + half)


def newcombe(k1: int, n1: int, k2: int, n2: int, confidence: float) -> tuple[float, float, float]:
    """``p1 - p2`` and its two-sided ``confidence`` interval (Newcombe's hybrid score method)."""
    z = _z(confidence)
    p1, p2 = k1 / n1, k2 / n2
    (l1, u1), (l2, u2) = wilson(k1, n1, z), wilson(k2, n2, z)
    diff = p1 - p2
    low = diff - math.sqrt((p1 - l1) ** 2 + (u2 - p2) ** 2)
    high = diff + math.sqrt((u1 - p1) ** 2 + (p2 - l2) ** 2)
    return diff, low, high


def _z(confidence: float) -> float:
    return NormalDist().inv_cdf(1 - (1 - confidence) / 2)


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
    n, k, z = len(cur), int((cur > 0).sum()), _z(signal.confidence)
    low, high = wilson(k, n, z)
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
    floor = wilson(0, n, z)[1]  # the lowest bound n requests can give: none retrieved
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
