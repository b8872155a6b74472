"""The canary analysis rules (deploy/analysis.py), pure: checks with ranges, hold on no data, steps,
promotion at the last step, rollback after `threshold` failed analyses; and the config."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from twin_core.deploy.analysis import CanaryConfig, Quality, canary_config, decide, next_weight
from twin_core.domain.inference import InferenceLog, LatencyMs
from twin_core.errors import ConfigError

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def quality(
    style: tuple[float, float] = (1.0, 0.9),
    grounded: tuple[float, float] = (0.8, 0.82),
    answers: tuple[int, int] = (10, 10),
    spread: float = 0.05,
) -> Quality:
    """Sampled answers: pooled Delta per side (its increase's interval +-``spread``) and per-answer
    groundedness alternating +-``spread`` around each side's mean (exact means, no luck)."""
    increase = style[0] - style[1]

    def values(centre: float, k: int) -> tuple[float, ...]:
        return tuple(centre + (spread if i % 2 else -spread) for i in range(k - k % 2))

    return Quality(
        *answers, *style, values(grounded[0], answers[0]), values(grounded[1], answers[1]),
        style_interval=(increase - spread, increase + spread),
    )  # fmt: skip


GOOD_Q = quality()  # style +0.1, groundedness -0.02: within the ranges


def rows(n: int, errors: int = 0, latency: float = 100.0, status: str = "error") -> list[InferenceLog]:
    """``n`` rows, the first ``errors`` of them failed (with ``status``): exact counts, no luck."""
    return [
        InferenceLog(
            time=T0 + timedelta(seconds=i),
            status=status if i < errors else "ok",
            model_version="v",
            latency_ms=LatencyMs(total=None if i < errors else latency),
        )
        for i in range(n)
    ]


def run(can: list[InferenceLog], prod: list[InferenceLog], q: Quality = GOOD_Q, **kw: Any) -> Any:
    cfg = kw.pop("cfg", CanaryConfig(min_requests=20))
    return decide(can, prod, q, weight=kw.pop("weight", 5), failed_before=kw.pop("failed", 0), cfg=cfg)


def test_no_data_holds_and_never_promotes() -> None:
    d = run([], rows(200))
    assert (d.action, d.result, d.next_weight, d.failed_checks) == ("hold", "hold", None, 0)
    assert d.checks[0].detail == "0/200 requests (ok + errors) < 20 on the canary side" and d.canary.requests == 0
    assert d.checks[0].n == {"canary": 0, "production": 200}
    few = run(rows(19), rows(200))
    assert few.action == "hold" and few.checks[0].detail == "19/200 requests (ok + errors) < 20 on the canary side"
    # quality: too few sampled answers on a side holds too
    d = run(rows(40), rows(200), quality(answers=(3, 10)))
    assert d.action == "hold" and [c.result for c in d.checks] == ["pass", "pass", "hold", "hold"]


def test_healthy_window_steps_up_then_promotes_at_max_weight() -> None:
    d = run(rows(40), rows(400))
    assert (d.action, d.weight, d.next_weight) == ("step", 5, 10)
    assert [c.result for c in d.checks] == ["pass"] * 4
    assert d.canary.success_rate == 1.0 and d.canary.counted == 40 and d.production.counted == 400
    last = run(rows(40), rows(400), weight=50)
    assert (last.action, last.next_weight) == ("promote", None)
    assert [next_weight(w, (5, 10, 25, 50)) for w in (5, 10, 25, 50)] == [10, 25, 50, None]


def test_thirty_percent_errors_fail_then_roll_back_at_threshold() -> None:
    d = run(rows(40, errors=12), rows(400, errors=4))
    assert (d.action, d.result, d.failed_checks) == ("fail", "fail", 1)
    check = d.checks[0]
    assert (check.name, check.result, check.value) == ("request-success-rate", "fail", 0.7)
    # 28 of 40 ok: Wilson 95 % interval [0.5457, 0.8193], wholly below 0.95
    assert d.canary.success_ci95 == (0.5457, 0.8193) and check.interval == [0.5457, 0.8193]
    assert check.n == {"canary": 40, "production": 400} and check.confidence == 0.95
    assert check.detail == (
        "success rate 0.700 (28/40 ok); n canary 40, production 400; 95% CI [0.546, 0.819] wholly out of range"
    )
    assert d.reasons[0] == f"request-success-rate 0.7 out of {{'min': 0.95}}: {check.detail}"
    again = run(rows(40, errors=12), rows(400), failed=1)
    assert (again.action, again.failed_checks) == ("rollback", 2)
    assert again.reasons[-1] == "failed checks 2/2"


def test_inconclusive_success_rate_holds_and_rejected_requests_do_not_count() -> None:
    d = run(rows(20, errors=2), rows(400))  # 0.90 < 0.95 but the CI reaches above it
    assert d.checks[0].result == "hold" and d.action == "hold"
    assert d.checks[0].detail == (
        "success rate 0.900 (18/20 ok); n canary 20, production 400; 95% CI [0.699, 0.972] inconclusive"
    )
    d = run(rows(40, errors=30, status="rejected"), rows(400))  # 30 client errors, 10 ok: too few
    assert d.canary.counted == 10 and d.canary.errors == 0 and d.action == "hold"


def test_latency_and_quality_checks_fail_out_of_range() -> None:
    slow = run(rows(40, latency=200), rows(400, latency=100))
    assert slow.action == "fail" and slow.checks[1].value == 2.0 and slow.checks[1].result == "fail"
    worse_style = run(rows(40), rows(400), quality(style=(1.6, 1.0), grounded=(0.8, 0.8)))
    assert worse_style.action == "fail" and worse_style.checks[2].value == 0.6
    ungrounded = run(rows(40), rows(400), quality(style=(1.0, 1.0), grounded=(0.5, 0.8)))
    assert ungrounded.action == "fail" and ungrounded.checks[3].value == 0.3


def test_config_steps_and_limits() -> None:
    assert canary_config({}).step_weights == (5, 10, 25, 50)
    assert canary_config({"step_weight": 20, "max_weight": 60}).step_weights == (20, 40, 60)
    cfg = canary_config({"interval": "1m", "threshold": 3})
    assert (cfg.interval_s, cfg.window_s, cfg.threshold, cfg.max_weight) == (60.0, 60.0, 3, 50)
    with pytest.raises(ConfigError, match="min_requests must be >= 1"):
        canary_config({"min_requests": 0})
    with pytest.raises(ConfigError, match="step weights"):
        canary_config({"step_weights": [10, 5]})
