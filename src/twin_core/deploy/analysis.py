"""The canary analysis, after Flagger's: pure functions of one window of the request log.

Every ``interval`` one analysis looks at the last ``window`` of the log (a sliding window, never
"since the canary started") and runs the metric checks, each a value with a range:

- ``request-success-rate`` (min): the canary's ok / (ok + errors); rejected and cancelled requests are
  the client's doing and count for neither. Wilson 95 % interval (statsmodels): the check fails only when
  the whole interval is below ``min``, passes when the estimate is at or above it, and holds in between.
  Production's count is stated beside the canary's (``n``), not required.
- ``latency-p95-ratio`` (max): canary p95 / production p95 of ``latency_ms.total`` of ok requests. Its
  95 % interval joins each side's distribution-free 97.5 % interval of its p95 (order statistics;
  Bonferroni): [canary low / production high, canary high / production low].
- ``style-distance-increase`` (max): Burrows' Delta of a sample of the canary's answers from the
  author's documents, minus the same for production's answers; 95 % percentile bootstrap interval over
  the sampled answers (``stylometry.style_difference_interval``).
- ``groundedness-drop`` (max): production's mean groundedness minus the canary's, over the sampled
  answers that retrieved context; 95 % percentile bootstrap interval of the difference of the means.

Every check states its sample sizes (``n``), its ``interval`` and ``confidence``, and decides as the
success rate does: it fails only when the whole interval is out of range, passes when the estimate is in
range, and holds (inconclusive) in between: a p95 ratio of 2 from a handful of requests does not fail.
A check with too little data (fewer than ``min_requests`` canary requests or ok latencies a side, or
``quality_min_answers`` answers, or answers with retrieved context, a side) holds: no data never promotes
and never counts as a failure. One failing check fails
the analysis; ``threshold`` failed analyses roll the canary back. A passing analysis moves the weight
to the next step, and one at the last step (``max_weight``) promotes.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from twin_core.domain.inference import InferenceLog
from twin_core.errors import ConfigError
from twin_core.evaluation.metrics import wilson_ci95

if TYPE_CHECKING:
    from twin_core.settings import Settings

_REPO_CONFIG = Path(__file__).resolve().parents[3] / "configs" / "deploy.yaml"
NOT_COUNTED = ("rejected", "cancelled")  # the client's doing: neither a success nor a model error
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?\s*$")
_UNITS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, None: 1}
CONFIDENCE = 0.95  # of every check's interval
RESAMPLES = 2000  # of the bootstrap intervals (seeded: the same window gives the same interval)
DEFAULT_METRICS = {
    "request-success-rate": {"min": 0.95},
    "latency-p95-ratio": {"max": 1.5},
    "style-distance-increase": {"max": 0.5},
    "groundedness-drop": {"max": 0.1},
}


def parse_duration(text: str | float | int) -> float:
    """Seconds from ``90``, ``30s``, ``15m``, ``1h``, ``2d``."""
    if isinstance(text, (int, float)):
        return float(text)
    match = _DURATION.match(str(text))
    if not match:
        raise ConfigError(f"not a duration: {text!r} (e.g. 30s, 15m, 1h)")
    return float(match.group(1)) * _UNITS[match.group(2)]


@dataclass(frozen=True)
class CanaryConfig:
    interval_s: float = 300.0
    window_s: float = 300.0
    step_weights: tuple[int, ...] = (5, 10, 25, 50)
    threshold: int = 2
    min_requests: int = 20
    quality_sample: int = 20
    quality_min_answers: int = 5
    metrics: dict[str, dict[str, float]] = field(default_factory=lambda: dict(DEFAULT_METRICS))

    @property
    def max_weight(self) -> int:
        return self.step_weights[-1]


def _weights(data: dict[str, Any]) -> tuple[int, ...]:
    """``step_weights: [5, 10, 25, 50]``, or Flagger's linear ``step_weight`` up to ``max_weight``."""
    if data.get("step_weights"):
        weights = tuple(int(w) for w in data["step_weights"])
    elif data.get("step_weight"):
        step, top = int(data["step_weight"]), int(data.get("max_weight", 50))
        weights = tuple(range(step, top + 1, step)) if step > 0 else ()
    else:
        weights = CanaryConfig.step_weights
    if not weights or list(weights) != sorted(set(weights)) or not 1 <= weights[0] <= weights[-1] <= 99:
        raise ConfigError(f"deploy config: step weights must rise within 1-99 (got {list(weights)})")
    return weights


def _metrics(raw: Any) -> dict[str, dict[str, float]]:
    """``metrics`` on top of the defaults, each a known check with a numeric ``min`` and/or ``max``: a typo'd
    name, an empty range or a word for a number would otherwise pass every analysis or crash in one."""
    if raw in (None, {}):
        return dict(DEFAULT_METRICS)
    if not isinstance(raw, dict):
        raise ConfigError(f"deploy config: canary.metrics must be a mapping of check -> range (got {raw!r})")
    unknown = sorted(set(raw) - set(DEFAULT_METRICS))
    if unknown:
        raise ConfigError(
            f"deploy config: unknown canary metric {', '.join(unknown)} (known: {', '.join(DEFAULT_METRICS)})"
        )
    for name, rng in raw.items():
        ok = isinstance(rng, dict) and rng and set(rng) <= {"min", "max"}
        if not ok or any(isinstance(v, bool) or not isinstance(v, (int, float)) for v in rng.values()):
            raise ConfigError(
                f"deploy config: canary.metrics.{name} must be {{min: N}} and/or {{max: N}} (got {rng!r})"
            )
    return {**DEFAULT_METRICS, **{k: {b: float(v) for b, v in r.items()} for k, r in raw.items()}}


def canary_config(data: dict[str, Any], **overrides: Any) -> CanaryConfig:
    """The ``canary`` section of configs/deploy.yaml, with non-None ``overrides`` on top."""
    merged = {**data, **{k: v for k, v in overrides.items() if v is not None}}
    try:
        interval = parse_duration(merged.get("interval", "5m"))
        cfg = CanaryConfig(
            interval_s=interval,
            window_s=parse_duration(merged.get("window", interval)),
            step_weights=_weights(merged),
            threshold=int(merged.get("threshold", 2)),
            min_requests=int(merged.get("min_requests", 20)),
            quality_sample=int(merged.get("quality_sample", 20)),
            quality_min_answers=int(merged.get("quality_min_answers", 5)),
            metrics=_metrics(merged.get("metrics")),
        )
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"deploy config: {exc}") from None
    if cfg.min_requests < 1 or cfg.quality_min_answers < 2:
        raise ConfigError("deploy config: min_requests must be >= 1 and quality_min_answers >= 2 (no data = hold)")
    if cfg.threshold < 1 or cfg.interval_s <= 0 or cfg.window_s <= 0:
        raise ConfigError("deploy config: threshold >= 1, interval and window > 0")
    return cfg


def load_canary_config(path: Path | None, **overrides: Any) -> CanaryConfig:
    data: dict[str, Any] = {}
    if path is not None:
        if not Path(path).is_file():
            raise ConfigError(f"deploy config {path} does not exist")
        data = _canary_section(Path(path))
    return canary_config(data, **overrides)


def _canary_section(path: Path) -> dict[str, Any]:
    """The file's ``canary`` mapping; a file that is not YAML, or a section that is not a mapping, is a
    ConfigError naming the file (exit 2), not a crash."""
    try:
        doc = yaml.safe_load(path.read_text())
    except (yaml.YAMLError, OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"deploy config {path}: not readable YAML: {str(exc).splitlines()[0]}") from None
    section = (doc or {}).get("canary") if isinstance(doc, dict) or doc is None else doc
    if not isinstance(section, dict) and section is not None:
        raise ConfigError(f"deploy config {path}: `canary` must be a mapping (got {type(section).__name__})")
    return section or {}


def load_config(settings: Settings | None = None, path: Path | None = None, **overrides: Any) -> CanaryConfig:
    """configs/deploy.yaml's ``canary`` (or TWIN_DEPLOY_CONFIG), with non-None ``overrides`` on top."""
    path = path or (settings.deploy.config if settings else None) or (_REPO_CONFIG if _REPO_CONFIG.is_file() else None)
    return load_canary_config(path, **overrides)


def _quantile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    pos = (len(ordered) - 1) * q
    lo = int(pos)
    hi = min(lo + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (pos - lo)


def quantile_interval(values: list[float], q: float, confidence: float) -> tuple[float, float | None] | None:
    """Distribution-free ``confidence`` interval of the ``q`` quantile from the order statistics (how many
    values fall below the quantile is binomial), whatever the distribution. The upper end is None
    (unbounded) when there are too few values to bound it: a p95 at 97.5 % needs 86. None without values."""
    from scipy.stats import binom

    if not values:
        return None
    ordered, n, tail = sorted(values), len(values), (1 - confidence) / 2
    lo = int(binom.ppf(tail, n, q))  # 1-based: P(fewer than lo values below the quantile) < tail
    hi = int(binom.ppf(1 - tail, n, q)) + 1  # P(hi or more values below it) <= tail
    return (ordered[lo - 1] if lo >= 1 else 0.0), (ordered[hi - 1] if hi <= n else None)


def difference_interval(a: Sequence[float], b: Sequence[float], confidence: float = CONFIDENCE) -> tuple[float, float]:
    """Percentile bootstrap interval of ``mean(a) - mean(b)``, each sample resampled on its own; seeded."""
    import numpy as np
    from scipy.stats import bootstrap

    res = bootstrap(
        (np.asarray(a, dtype=float), np.asarray(b, dtype=float)),
        lambda x, y, axis: np.mean(x, axis=axis) - np.mean(y, axis=axis),
        paired=False, n_resamples=RESAMPLES, confidence_level=confidence, method="percentile", rng=0,
    )  # fmt: skip
    return float(res.confidence_interval.low), float(res.confidence_interval.high)


P95_SIDE = 1 - (1 - CONFIDENCE) / 2  # each side's p95 interval: the ratio's holds at CONFIDENCE (Bonferroni)


@dataclass
class SideStats:
    requests: int  # every row of the window
    counted: int  # ok + errors (rejected and cancelled left out)
    errors: int
    success_rate: float | None
    success_ci95: tuple[float, float] | None
    p95_ms: float | None
    latencies: int = 0  # ok requests with a latency: the p95's sample
    p95_interval_ms: tuple[float, float | None] | None = None  # at P95_SIDE; high None = unbounded


def side_stats(rows: Iterable[InferenceLog]) -> SideStats:
    rows = list(rows)
    counted = [r for r in rows if r.status not in NOT_COUNTED]
    ok = sum(1 for r in counted if r.status == "ok")
    lat = [float(r.latency_ms.total) for r in counted if r.status == "ok" and r.latency_ms.total is not None]
    ci = wilson_ci95(ok, len(counted))  # None without counted requests
    return SideStats(
        requests=len(rows),
        counted=len(counted),
        errors=len(counted) - ok,
        success_rate=round(ok / len(counted), 4) if counted else None,
        success_ci95=(ci[0], ci[1]) if ci else None,
        p95_ms=_quantile(lat, 0.95),
        latencies=len(lat),
        p95_interval_ms=quantile_interval(lat, 0.95, P95_SIDE),
    )


@dataclass
class Quality:
    """The live-quality numbers of one window (computed by ``watch`` from sampled answers)."""

    canary_answers: int = 0
    production_answers: int = 0
    canary_style: float | None = None  # pooled Delta of each side's sampled answers
    production_style: float | None = None
    canary_grounded: tuple[float, ...] = ()  # groundedness of each sampled answer that retrieved context
    production_grounded: tuple[float, ...] = ()
    note: str = ""
    style_interval: tuple[float, float] | None = None  # of canary_style - production_style (bootstrap)


@dataclass
class Check:
    name: str
    result: str  # "pass" | "fail" | "hold"
    value: float | None
    range: dict[str, float]
    detail: str
    n: dict[str, int] | None = None  # the sample sizes the value rests on, per side
    interval: list[float | None] | None = None  # of the value, at ``confidence``; None end = unbounded
    confidence: float | None = None


def _round(x: float | None) -> float | None:
    return None if x is None else round(x, 4)


def _bounded(name: str, value: float, ci: tuple[float, float | None], rng: dict[str, float], detail: str,
             n: dict[str, int]) -> Check:  # fmt: skip
    """Fail when the whole interval is out of range, pass when ``value`` is in it, hold in between."""
    low, high = ci
    floor, ceiling = rng.get("min"), rng.get("max")
    outside = (ceiling is not None and low > ceiling) or (floor is not None and high is not None and high < floor)
    inside = (ceiling is None or value <= ceiling) and (floor is None or value >= floor)
    result = "fail" if outside else "pass" if inside else "hold"
    sizes = ", ".join(f"{side} {k}" for side, k in n.items())
    text = f"{detail}; n {sizes}; {CONFIDENCE:.0%} CI [{low:.3f}, {'unbounded' if high is None else f'{high:.3f}'}]"
    text += {"fail": " wholly out of range", "hold": " inconclusive", "pass": ""}[result]
    return Check(name, result, round(value, 4), rng, text, n, [_round(low), _round(high)], CONFIDENCE)


def success_check(can: SideStats, prod: SideStats, cfg: CanaryConfig) -> Check:
    """The canary's success rate against ``min``: its Wilson interval decides as every check's does
    (``_bounded``); production's count is stated beside it, not required."""
    rng = cfg.metrics["request-success-rate"]
    n = {"canary": can.counted, "production": prod.counted}
    if can.counted < cfg.min_requests:
        hold = f"{can.counted}/{prod.counted} requests (ok + errors) < {cfg.min_requests} on the canary side"
        return Check("request-success-rate", "hold", can.success_rate, rng, hold, n)
    assert can.success_rate is not None and can.success_ci95 is not None
    detail = f"success rate {can.success_rate:.3f} ({can.counted - can.errors}/{can.counted} ok)"
    return _bounded("request-success-rate", can.success_rate, can.success_ci95, rng, detail, n)


def latency_check(can: SideStats, prod: SideStats, cfg: CanaryConfig) -> Check:
    rng = cfg.metrics["latency-p95-ratio"]
    n = {"canary": can.latencies, "production": prod.latencies}
    if min(n.values()) < cfg.min_requests or not can.p95_ms or not prod.p95_ms:
        hold = f"{can.latencies}/{prod.latencies} ok requests with a latency < {cfg.min_requests} a side"
        return Check("latency-p95-ratio", "hold", None, rng, hold, n)
    assert can.p95_interval_ms is not None and prod.p95_interval_ms is not None
    (c_low, c_high), (p_low, p_high) = can.p95_interval_ms, prod.p95_interval_ms
    low = c_low / p_high if p_high else 0.0
    high = c_high / p_low if c_high is not None and p_low > 0 else None
    detail = f"p95 {can.p95_ms:.0f} ms vs {prod.p95_ms:.0f} ms"
    return _bounded("latency-p95-ratio", can.p95_ms / prod.p95_ms, (low, high), rng, detail, n)


def style_check(q: Quality, cfg: CanaryConfig) -> Check:
    rng = cfg.metrics["style-distance-increase"]
    n = {"canary": q.canary_answers, "production": q.production_answers}
    hold = None
    if min(n.values()) < cfg.quality_min_answers:
        hold = f"{q.canary_answers}/{q.production_answers} answers < {cfg.quality_min_answers} a side"
    elif q.canary_style is None or q.production_style is None or q.style_interval is None:
        hold = q.note or "style not measured (no interval)"
    if hold is not None:
        return Check("style-distance-increase", "hold", None, rng, hold, n)
    assert q.canary_style is not None and q.production_style is not None and q.style_interval is not None
    detail = f"Delta {q.canary_style:.3f} vs {q.production_style:.3f}"
    return _bounded("style-distance-increase", q.canary_style - q.production_style, q.style_interval, rng, detail, n)


def groundedness_check(q: Quality, cfg: CanaryConfig) -> Check:
    rng = cfg.metrics["groundedness-drop"]
    can, prod = q.canary_grounded, q.production_grounded
    n = {"canary": len(can), "production": len(prod)}
    if min(n.values()) < cfg.quality_min_answers:
        hold = f"{len(can)}/{len(prod)} answers with retrieved context < {cfg.quality_min_answers} a side"
        return Check("groundedness-drop", "hold", None, rng, hold, n)
    c_mean, p_mean = sum(can) / len(can), sum(prod) / len(prod)
    detail = f"groundedness {c_mean:.3f} vs {p_mean:.3f}"
    return _bounded("groundedness-drop", p_mean - c_mean, difference_interval(prod, can), rng, detail, n)


def quality_checks(q: Quality, cfg: CanaryConfig) -> list[Check]:
    return [style_check(q, cfg), groundedness_check(q, cfg)]


@dataclass
class Decision:
    action: str  # "hold" | "fail" | "step" | "promote" | "rollback"
    result: str  # the analysis: "pass" | "fail" | "hold"
    weight: int  # the canary's weight during the window
    next_weight: int | None  # after a step
    failed_checks: int  # failed analyses of this canary so far, this one included
    checks: list[Check]
    canary: SideStats
    production: SideStats
    reasons: list[str]

    def numbers(self) -> dict[str, Any]:
        data = asdict(self)
        data.pop("reasons")
        return data


def next_weight(weight: int, weights: Sequence[int]) -> int | None:
    """The next step above ``weight``; None at (or past) the last: promote."""
    return next((w for w in weights if w > weight), None)


def decide(
    canary_rows: Iterable[InferenceLog],
    production_rows: Iterable[InferenceLog],
    quality: Quality,
    *,
    weight: int,
    failed_before: int,
    cfg: CanaryConfig,
) -> Decision:
    """One analysis: the checks over one window, and what to do about them."""
    can, prod = side_stats(canary_rows), side_stats(production_rows)
    checks = [success_check(can, prod, cfg), latency_check(can, prod, cfg), *quality_checks(quality, cfg)]
    failed = [c for c in checks if c.result == "fail"]
    held = [c for c in checks if c.result == "hold"]
    if failed:
        count = failed_before + 1
        action = "rollback" if count >= cfg.threshold else "fail"
        reasons = [f"{c.name} {c.value} out of {c.range}: {c.detail}" for c in failed]
        reasons.append(f"failed checks {count}/{cfg.threshold}")
        return Decision(action, "fail", weight, None, count, checks, can, prod, reasons)
    if held:
        reasons = [f"{c.name}: {c.detail}" for c in held]
        return Decision("hold", "hold", weight, None, failed_before, checks, can, prod, reasons)
    step = next_weight(weight, cfg.step_weights)
    action = "promote" if step is None else "step"
    reasons = [f"all checks passed at {weight}%" + (f"; next {step}%" if step else "; promote")]
    return Decision(action, "pass", weight, step, failed_before, checks, can, prod, reasons)
