"""The gate: per-row paired differences, candidate vs baseline, with a bootstrap confidence interval.

For each rule (configs/evaluation.yaml) only the rows both models were measured on count (paired).
The difference is taken in the good direction (``better:``), so a positive value favours the candidate:
higher-is-better ``c - b``, lower-is-better ``b - c``, and for ``max_ratio`` the per-row log ratio
``log(b / c)``. "not worse" passes when the interval's worst (low) end is within the tolerance
(``min_delta``, or ``-log(max_ratio)``); "better" needs the whole interval above 0. ``min``/``max``
bound the candidate's mean the same way: the worst end of its bootstrap interval (``candidate_low`` /
``candidate_high``) must be within the bound, so a mean that clears it by noise does not pass. A metric
needs ``min_rows`` paired rows (at least 2) to be decided on: with fewer (rows where an answer, the judge
or the metric failed) a required metric is missing and fails the gate, an optional one is skipped; when
every metric is missing the gate fails.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

from twin_core.evaluation.config import EvalConfig, Rule

PerRow = dict[str, list[float | None]]  # metric -> one value per evaluated row (None = not measured)


@dataclass
class Check:
    metric: str
    outcome: str  # "pass" | "fail" | "missing" (required: fails the gate) | "skipped" (optional, missing)
    candidate: float | None  # means over the paired rows
    baseline: float | None
    rows: int  # paired rows
    diff: float | None  # mean paired difference, good direction
    low: float | None  # its bootstrap interval
    high: float | None
    bound: float | None  # the tolerance the low end had to reach
    rule: str
    reason: str = ""
    candidate_low: float | None = None  # bootstrap interval of the candidate's mean (rules with min / max)
    candidate_high: float | None = None


@dataclass
class GateResult:
    passed: bool
    failing: list[str]
    missing: list[str]
    checks: list[Check]
    confidence: float
    min_rows: int  # paired rows a metric needs to be decided on

    def as_dict(self) -> dict[str, Any]:
        return {
            "passed": self.passed,
            "decision": "pass" if self.passed else "fail",
            "failing": self.failing,
            "missing": self.missing,
            "confidence": self.confidence,
            "min_rows": self.min_rows,
            "checks": [asdict(c) for c in self.checks],
        }


def paired(cand: list[float | None], base: list[float | None]) -> tuple[list[float], list[float]]:
    """The rows where both values exist, in order."""
    if not cand or not base:
        return [], []
    pairs = [(c, b) for c, b in zip(cand, base, strict=True) if c is not None and b is not None]
    return [float(c) for c, _ in pairs], [float(b) for _, b in pairs]


def interval(diffs: list[float], resamples: int, confidence: float, seed: int = 0) -> tuple[float, float]:
    """Percentile bootstrap interval of the mean (scipy), seeded: the same rows give the same interval."""
    import numpy as np
    from scipy.stats import bootstrap

    data = np.asarray(diffs, dtype=float)
    if float(data.max() - data.min()) == 0.0:  # every row equal: the interval is that value
        return float(data[0]), float(data[0])
    res = bootstrap((data,), np.mean, n_resamples=resamples, confidence_level=confidence, method="percentile", rng=seed)
    return float(res.confidence_interval.low), float(res.confidence_interval.high)


def _differences(rule: Rule, c: list[float], b: list[float]) -> list[float]:
    if rule.max_ratio is not None:
        return [math.log(max(y, 1e-12)) - math.log(max(x, 1e-12)) for x, y in zip(c, b, strict=True)]
    return [x - y if rule.better == "higher" else y - x for x, y in zip(c, b, strict=True)]


def _tolerance(rule: Rule) -> float | None:
    if rule.decide == "better":
        return 0.0
    if rule.max_ratio is not None:
        return -math.log(rule.max_ratio)
    return rule.min_delta


def _verdict(rule: Rule, low: float, bound: float | None, mean_ci: tuple[float, float] | None) -> tuple[str, str]:
    if bound is not None:
        ok = low > bound if rule.decide == "better" else low >= bound - 1e-12
        if not ok:
            return "fail", f"CI low end {low:.4g} {'<=' if rule.decide == 'better' else '<'} {bound:.4g}"
    if mean_ci is None:
        return "pass", ""
    c_low, c_high = mean_ci  # the candidate's mean: its interval's worst end must clear the bound
    if rule.min is not None and not c_low >= rule.min:
        return "fail", f"candidate mean CI low end {c_low:.4g} < {rule.min:g}"
    if rule.max is not None and not c_high <= rule.max:
        return "fail", f"candidate mean CI high end {c_high:.4g} > {rule.max:g}"
    return "pass", ""


def min_paired(config: EvalConfig) -> int:
    """The fewest paired rows a metric is decided on: ``min_rows``, and never under 2 (an interval)."""
    return max(2, config.min_rows)


def check(rule: Rule, cand: list[float | None], base: list[float | None], config: EvalConfig) -> Check:
    c, b = paired(cand, base)
    desc = rule.describe()
    need = min_paired(config)
    if len(c) < need:
        outcome = "missing" if rule.required else "skipped"
        reason = f"{len(c)} paired rows, fewer than {need} (min_rows {config.min_rows}, {config.origin('min_rows')})"
        return Check(rule.metric, outcome, None, None, len(c), None, None, None, None, desc, reason)
    diffs = _differences(rule, c, b)
    low, high = interval(diffs, config.bootstrap_resamples, config.confidence)
    bound = _tolerance(rule)
    absolute = rule.min is not None or rule.max is not None
    mean_ci = interval(c, config.bootstrap_resamples, config.confidence) if absolute else None
    outcome, reason = _verdict(rule, low, bound, mean_ci)
    return Check(
        rule.metric, outcome, sum(c) / len(c), sum(b) / len(b), len(c), sum(diffs) / len(diffs), low, high, bound,
        desc, reason, *(mean_ci or (None, None)),
    )  # fmt: skip


def apply_gate(candidate: PerRow, baseline: PerRow, config: EvalConfig) -> GateResult:
    """Pass when no rule fails, no required metric is missing, and at least one metric was measured."""
    checks = [check(r, candidate.get(r.metric) or [], baseline.get(r.metric) or [], config) for r in config.rules]
    failing = [c.metric for c in checks if c.outcome in ("fail", "missing")]
    missing = [c.metric for c in checks if c.outcome in ("missing", "skipped")]
    measured = any(c.outcome in ("pass", "fail") for c in checks)
    return GateResult(bool(measured and not failing), failing, missing, checks, config.confidence, min_paired(config))
