"""The canary watch window: canary vs production error rate and latency from the inference log.

``decide`` is pure: given the canary's and production's request rows since the canary started, it
says promote (healthy for the whole window with enough requests), rollback (worse than a threshold,
as soon as there are enough canary requests) or wait. ``watch`` reads the rows from the warehouse
(``inference_logs`` by author; a row is the canary's when its ``model_version`` is the canary ref),
and acts through ``rollout``: the decision and its numbers land in the registry history.

Errors are requests whose status is not ``ok``, except ``rejected`` (a bad request is the client's
fault, not the model's). Latency is ``latency_ms.total`` of successful requests.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Iterable
from dataclasses import asdict, dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import yaml

from twin_core.domain.inference import InferenceLog
from twin_core.errors import ConfigError, InputError
from twin_core.settings import Settings

log = logging.getLogger(__name__)

_REPO_CONFIG = Path(__file__).resolve().parents[3] / "configs" / "deploy.yaml"
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?\s*$")
_UNITS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, None: 1}
NOT_ERRORS = ("ok", "rejected")


def parse_duration(text: str | float | int) -> float:
    """Seconds from ``90``, ``30s``, ``15m``, ``1h``, ``2d``."""
    if isinstance(text, (int, float)):
        return float(text)
    match = _DURATION.match(str(text))
    if not match:
        raise ConfigError(f"not a duration: {text!r} (e.g. 30s, 15m, 1h)")
    return float(match.group(1)) * _UNITS[match.group(2)]


@dataclass(frozen=True)
class WatchConfig:
    window_s: float = 1800.0
    min_requests: int = 50
    max_error_rate_delta: float = 0.02
    max_error_rate: float = 0.05
    max_latency_ratio: float = 1.5
    poll_s: float = 30.0
    on_timeout: str = "rollback"


def load_watch_config(settings: Settings | None = None, path: Path | None = None, **overrides: Any) -> WatchConfig:
    """configs/deploy.yaml's ``watch`` (or TWIN_DEPLOY_CONFIG), with non-None ``overrides`` on top."""
    path = path or (settings.deploy.config if settings else None) or (_REPO_CONFIG if _REPO_CONFIG.is_file() else None)
    data: dict[str, Any] = {}
    if path is not None:
        if not Path(path).is_file():
            raise ConfigError(f"deploy config {path} does not exist")
        data = (yaml.safe_load(Path(path).read_text()) or {}).get("watch") or {}
    merged = {**data, **{k: v for k, v in overrides.items() if v is not None}}
    try:
        cfg = WatchConfig(
            window_s=parse_duration(merged.get("window", "30m")),
            min_requests=int(merged.get("min_requests", 50)),
            max_error_rate_delta=float(merged.get("max_error_rate_delta", 0.02)),
            max_error_rate=float(merged.get("max_error_rate", 0.05)),
            max_latency_ratio=float(merged.get("max_latency_ratio", 1.5)),
            poll_s=parse_duration(merged.get("poll", "30s")),
            on_timeout=str(merged.get("on_timeout", "rollback")),
        )
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"deploy config: {exc}") from None
    if cfg.on_timeout not in ("rollback", "keep"):
        raise ConfigError(f"deploy config: on_timeout must be rollback or keep (got {cfg.on_timeout!r})")
    if cfg.min_requests < 0 or cfg.window_s < 0:
        raise ConfigError("deploy config: window and min_requests must not be negative")
    return cfg


def _quantile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    pos = (len(ordered) - 1) * q
    lo = int(pos)
    hi = min(lo + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (pos - lo)


@dataclass
class SideStats:
    requests: int
    errors: int
    error_rate: float | None
    p50_ms: float | None
    p95_ms: float | None


def side_stats(rows: Iterable[InferenceLog]) -> SideStats:
    rows = list(rows)
    errors = sum(1 for r in rows if r.status not in NOT_ERRORS)
    lat = [float(r.latency_ms.total) for r in rows if r.status == "ok" and r.latency_ms.total is not None]
    return SideStats(
        requests=len(rows),
        errors=errors,
        error_rate=errors / len(rows) if rows else None,
        p50_ms=_quantile(lat, 0.5),
        p95_ms=_quantile(lat, 0.95),
    )


@dataclass
class Decision:
    action: str  # "promote" | "rollback" | "wait"
    reasons: list[str]
    canary: SideStats
    production: SideStats
    elapsed_s: float
    window_s: float

    def numbers(self) -> dict[str, Any]:
        return {
            "canary": asdict(self.canary),
            "production": asdict(self.production),
            "elapsed_s": round(self.elapsed_s, 1),
            "window_s": self.window_s,
        }


def decide(
    canary_rows: Iterable[InferenceLog],
    production_rows: Iterable[InferenceLog],
    started_at: datetime,
    now: datetime,
    cfg: WatchConfig,
) -> Decision:
    can, prod = side_stats(canary_rows), side_stats(production_rows)
    elapsed = max((now - started_at).total_seconds(), 0.0)
    reasons: list[str] = []
    if can.requests < cfg.min_requests:
        reasons.append(f"{can.requests} canary requests < {cfg.min_requests} needed")
        return Decision("wait", reasons, can, prod, elapsed, cfg.window_s)
    if can.error_rate is not None:
        if prod.error_rate is not None and prod.requests:
            limit = prod.error_rate + cfg.max_error_rate_delta
            if can.error_rate > limit:
                reasons.append(
                    f"canary error rate {can.error_rate:.3f} > production {prod.error_rate:.3f} "
                    f"+ {cfg.max_error_rate_delta:g}"
                )
        elif can.error_rate > cfg.max_error_rate:
            reasons.append(f"canary error rate {can.error_rate:.3f} > {cfg.max_error_rate:g} (no production traffic)")
    if can.p95_ms is not None and prod.p95_ms and can.p95_ms > prod.p95_ms * cfg.max_latency_ratio:
        reasons.append(
            f"canary p95 latency {can.p95_ms:.0f} ms > production {prod.p95_ms:.0f} ms x {cfg.max_latency_ratio:g}"
        )
    if reasons:
        return Decision("rollback", reasons, can, prod, elapsed, cfg.window_s)
    if elapsed < cfg.window_s:
        return Decision(
            "wait",
            [f"healthy so far; {elapsed:.0f}/{cfg.window_s:.0f} s of the window"],
            can,
            prod,
            elapsed,
            cfg.window_s,
        )
    return Decision(
        "promote",
        [f"healthy for the {cfg.window_s:.0f} s window over {can.requests} canary requests"],
        can,
        prod,
        elapsed,
        cfg.window_s,
    )


def canary_started_at(mv: Any) -> datetime:
    """When the version last became a canary (its registry history)."""
    for change in reversed(mv.history):
        if change.to_stage == "canary":
            at = change.at
            return at.replace(tzinfo=UTC) if at.tzinfo is None else at
    raise InputError(f"{mv.ref} has no canary start in its history")


def evaluate_window(settings: Settings, mv: Any, cfg: WatchConfig, now: datetime | None = None) -> Decision:
    from twin_core.stores.warehouse import open_warehouse

    now = now or datetime.now(UTC)
    started = canary_started_at(mv)
    rows = list(
        open_warehouse(settings).inference_logs(start=started, end=now + timedelta(seconds=1), author=mv.author)
    )
    canary = [r for r in rows if r.model_version == mv.ref]
    production = [r for r in rows if r.model_version != mv.ref]
    return decide(canary, production, started, now, cfg)


def watch(
    settings: Settings,
    *,
    author: str | None = None,
    ref: str | None = None,
    cfg: WatchConfig | None = None,
    follow: bool = False,
    timeout_s: float | None = None,
    client: Any = None,
    sleep: Any = time.sleep,
) -> dict[str, Any]:
    """One look at the window (or ``follow`` until a decision / ``timeout_s``), and the action taken."""
    from twin_core.deploy import rollout

    cfg = cfg or load_watch_config(settings)
    mv = rollout.find_canary(settings, author, ref)  # no canary -> InputError
    deadline = time.monotonic() + (timeout_s if timeout_s is not None else cfg.window_s * 2 + 60)
    while True:
        decision = evaluate_window(settings, mv, cfg)
        log.info("watch %s: %s (%s)", mv.ref, decision.action, "; ".join(decision.reasons))
        if decision.action != "wait" or not follow or time.monotonic() >= deadline:
            break
        sleep(min(cfg.poll_s, max(deadline - time.monotonic(), 0.0)))
    if decision.action == "wait" and follow and cfg.on_timeout == "rollback":
        decision = replace(
            decision, action="rollback", reasons=[*decision.reasons, "no decision before the watch timeout (fail safe)"]
        )
    numbers = decision.numbers()
    reason = "; ".join(decision.reasons)
    result: dict[str, Any] = {"model": mv.ref, "decision": decision.action, "reasons": decision.reasons, **numbers}
    if decision.action == "promote":
        result["rollout"] = rollout.promote(
            settings, ref=mv.ref, reason=f"watch: {reason}", numbers=numbers, client=client
        )
    elif decision.action == "rollback":
        result["rollout"] = rollout.rollback(
            settings, ref=mv.ref, reason=f"watch: {reason}", numbers=numbers, client=client
        )
    return result
