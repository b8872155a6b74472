"""The gate: the candidate's metrics against the baseline's, rule by rule (configs/evaluation.yaml)."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from twin_core.evaluation.config import EvalConfig, Rule


@dataclass
class Check:
    metric: str
    outcome: str  # "pass" | "fail" | "missing"
    candidate: float | None
    baseline: float | None
    bound: float | None  # the value the candidate had to reach (or stay under)
    rule: str
    reason: str = ""


@dataclass
class GateResult:
    passed: bool
    failing: list[str]
    missing: list[str]
    checks: list[Check]
    fail_closed: bool

    def as_dict(self) -> dict[str, Any]:
        return {
            "passed": self.passed,
            "decision": "pass" if self.passed else "fail",
            "failing": self.failing,
            "missing": self.missing,
            "fail_closed": self.fail_closed,
            "checks": [asdict(c) for c in self.checks],
        }


def _check(rule: Rule, cand: float | None, base: float | None) -> Check:
    desc = rule.describe()
    if cand is None:
        return Check(rule.metric, "missing", cand, base, None, desc, "not measured for the candidate")
    bounds: list[tuple[str, float]] = []  # (kind, bound)
    relative = rule.max_ratio is not None or rule.min_delta is not None
    if relative and base is None:
        return Check(rule.metric, "missing", cand, base, None, desc, "not measured for the baseline")
    if rule.max_ratio is not None and base is not None:
        bounds.append(("max", base * rule.max_ratio))
    if rule.min_delta is not None and base is not None:
        bounds.append(("min", base + rule.min_delta))
    if rule.min is not None:
        bounds.append(("min", rule.min))
    if rule.max is not None:
        bounds.append(("max", rule.max))
    for kind, bound in bounds:
        ok = cand <= bound + 1e-12 if kind == "max" else cand >= bound - 1e-12
        if not ok:
            sign = ">" if kind == "max" else "<"
            return Check(rule.metric, "fail", cand, base, bound, desc, f"{cand:.4g} {sign} {bound:.4g}")
    return Check(rule.metric, "pass", cand, base, bounds[0][1] if bounds else None, desc)


def apply_gate(candidate: dict[str, float | None], baseline: dict[str, float | None], config: EvalConfig) -> GateResult:
    """Pass when no rule fails; a missing metric fails only when ``fail_closed``."""
    checks = [_check(rule, candidate.get(rule.metric), baseline.get(rule.metric)) for rule in config.rules]
    failing = [c.metric for c in checks if c.outcome == "fail"]
    missing = [c.metric for c in checks if c.outcome == "missing"]
    if config.fail_closed:
        failing += missing
    return GateResult(not failing, failing, missing, checks, config.fail_closed)
