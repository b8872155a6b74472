"""The server error rate: a one-sided decision on its increase, with the uncertainty stated.

Only server failures count: ``error`` and ``unavailable`` (``serving/kserve_models.py``, the RAG
pipeline) over the requests the server answered (``ok`` + failures). A ``rejected`` request (the
client's 4xx) or a ``cancelled`` one (the client went away) counts in neither. The score is the lower
bound of Newcombe's hybrid score interval (Wilson intervals of both proportions, Newcombe 1998, method
10) of ``current - reference``: it drifts when that bound is above the threshold (the smallest increase
worth an alert), so fewer errors than before (a recovery) never alert, and a few failures in a small
window do not either.
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
    z = NormalDist().inv_cdf(1 - (1 - confidence) / 2)
    p1, p2 = k1 / n1, k2 / n2
    (l1, u1), (l2, u2) = wilson(k1, n1, z), wilson(k2, n2, z)
    diff = p1 - p2
    low = diff - math.sqrt((p1 - l1) ** 2 + (u2 - p2) ** 2)
    high = diff + math.sqrt((u1 - p1) ** 2 + (p2 - l2) ** 2)
    return diff, low, high


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
