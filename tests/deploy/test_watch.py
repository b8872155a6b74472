"""The canary watch window from synthetic request-log rows: auto-rollback on an injected error rate,
auto-promotion of a healthy canary, each decision in the registry history with its numbers."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from eval_fixtures import AUTHOR, fake_model_folder, register, write_dataset


def rows(
    version: str, n: int, error_rate: float, latency_ms: float, start: datetime, seed: int, step_s: float = 1.0
) -> list[Any]:
    from twin_core.domain.inference import InferenceLog, LatencyMs

    rng = random.Random(seed)
    out = []
    for i in range(n):
        failed = rng.random() < error_rate
        out.append(
            InferenceLog(
                time=start + timedelta(seconds=i * step_s),
                status="error" if failed else "ok",
                error="generation failed" if failed else None,
                author=AUTHOR,
                query=f"q{i}",
                model_version=version,
                latency_ms=LatencyMs(total=None if failed else latency_ms * rng.uniform(0.8, 1.2)),
            )
        )
    return out


@pytest.fixture
def rollout_state(settings: Any, tmp_path: Path) -> dict[str, Any]:
    """v1 in production, v2 a 10 % canary that started a minute ago."""
    from twin_core.deploy import rollout

    dataset = write_dataset(settings)
    v1 = register(settings, fake_model_folder(tmp_path, "m1"), dataset, "base")
    v2 = register(settings, fake_model_folder(tmp_path, "m2"), dataset, "base")
    from twin_core.stores.registry import open_registry

    open_registry(settings).set_stage(v1.ref, "production", "first production")
    rollout.start_canary(settings, v2.ref, 10)
    return {"v1": v1, "v2": v2, "start": datetime.now(UTC) + timedelta(milliseconds=5)}


def _log(settings: Any, batch: list[Any]) -> None:
    """Append the rows (stamped a millisecond apart after the canary start) and let their time pass."""
    import time

    from twin_core.stores.warehouse import open_warehouse

    wh = open_warehouse(settings)
    for row in batch:
        wh.append_inference_log(row)
    time.sleep(0.3)


def test_decide_rules() -> None:
    from twin_core.deploy.watch import WatchConfig, decide

    start = datetime(2026, 1, 1, tzinfo=UTC)
    cfg = WatchConfig(window_s=600, min_requests=50)
    prod = rows("p", 400, 0.01, 100, start, 1)
    few = decide(rows("c", 10, 0.0, 100, start, 2), prod, start, start + timedelta(hours=1), cfg)
    assert few.action == "wait" and "10 canary requests < 50" in few.reasons[0]
    early = decide(rows("c", 60, 0.0, 100, start, 3), prod, start, start + timedelta(seconds=60), cfg)
    assert early.action == "wait"
    bad = decide(rows("c", 60, 0.3, 100, start, 4), prod, start, start + timedelta(seconds=60), cfg)
    assert bad.action == "rollback" and "error rate" in bad.reasons[0]  # no need to wait for the window
    slow = decide(rows("c", 60, 0.0, 400, start, 5), prod, start, start + timedelta(hours=1), cfg)
    assert slow.action == "rollback" and "p95 latency" in slow.reasons[0]
    good = decide(rows("c", 60, 0.0, 105, start, 6), prod, start, start + timedelta(hours=1), cfg)
    assert good.action == "promote" and good.canary.requests == 60 and good.production.requests == 400


def test_injected_errors_roll_the_canary_back(settings: Any, rollout_state: dict[str, Any]) -> None:
    from twin_core.deploy.watch import WatchConfig, watch
    from twin_core.stores.registry import open_registry

    v1, v2, start = rollout_state["v1"], rollout_state["v2"], rollout_state["start"]
    _log(settings, rows(v1.ref, 180, 0.01, 900, start, 7, 0.001) + rows(v2.ref, 60, 0.25, 900, start, 8, 0.001))
    out = watch(settings, author=AUTHOR, cfg=WatchConfig(window_s=3600, min_requests=50))
    assert out["decision"] == "rollback" and out["canary"]["requests"] == 60
    assert out["canary"]["error_rate"] > 0.15 and out["production"]["requests"] == 180
    reg = open_registry(settings)
    assert reg.get(v2.ref).stage == "archived" and reg.production(AUTHOR).ref == v1.ref
    last = reg.get(v2.ref).history[-1]
    assert last.to_stage == "archived" and "error rate" in last.reason
    assert last.numbers["canary"]["errors"] == out["canary"]["errors"]
    assert last.numbers["production"]["error_rate"] == out["production"]["error_rate"]


def test_healthy_canary_is_promoted(settings: Any, rollout_state: dict[str, Any]) -> None:
    from twin_core.deploy.watch import WatchConfig, watch
    from twin_core.stores.registry import open_registry

    v1, v2, start = rollout_state["v1"], rollout_state["v2"], rollout_state["start"]
    _log(settings, rows(v1.ref, 180, 0.01, 900, start, 9, 0.001) + rows(v2.ref, 60, 0.0, 850, start, 10, 0.001))
    # window of 0 s: the canary has already been healthy for the whole window
    out = watch(settings, author=AUTHOR, cfg=WatchConfig(window_s=0, min_requests=50))
    assert out["decision"] == "promote"
    reg = open_registry(settings)
    assert reg.production(AUTHOR).ref == v2.ref and reg.get(v1.ref).stage == "archived"
    last = reg.get(v2.ref).history[-1]
    assert last.to_stage == "production" and last.reason.startswith("watch: healthy")
    assert last.numbers["canary"]["requests"] == 60 and last.numbers["canary"]["errors"] == 0


def test_waiting_changes_nothing_and_follow_times_out_to_rollback(settings: Any, rollout_state: dict[str, Any]) -> None:
    from twin_core.deploy.watch import WatchConfig, watch
    from twin_core.stores.registry import open_registry

    v2 = rollout_state["v2"]
    cfg = WatchConfig(window_s=3600, min_requests=50, poll_s=0.01)
    out = watch(settings, author=AUTHOR, cfg=cfg)
    assert out["decision"] == "wait" and "rollout" not in out
    assert open_registry(settings).get(v2.ref).stage == "canary"
    out = watch(settings, author=AUTHOR, cfg=cfg, follow=True, timeout_s=0.05, sleep=lambda s: None)
    assert out["decision"] == "rollback" and "fail safe" in out["reasons"][-1]
    assert open_registry(settings).get(v2.ref).stage == "archived"


def test_cli_local_canary_status_and_promote(settings: Any, tmp_path: Path, twin: Any) -> None:
    dataset = write_dataset(settings)
    v1 = register(settings, fake_model_folder(tmp_path, "m1"), dataset, "base")
    env = {"TWIN_DEPLOY_TARGET": "local"}
    run = twin("deploy", "canary", v1.ref, "--percent", "15", env=env)
    assert run.returncode == 0, run.stderr[-2000:]
    assert run.result["model"]["stage"] == "canary" and run.result["model"]["canary_percent"] == 15
    assert run.result["kubernetes"] is None
    status = twin("deploy", "status", env=env).result
    assert status["authors"]["ada-quillfeather"]["canary"]["ref"] == v1.ref
    assert status["authors"]["ada-quillfeather"]["production"] is None
    bad = twin("deploy", "canary", "ada-quillfeather/v0099", env=env)
    assert bad.returncode == 3 and "unknown model version" in bad.result["error"]
    run = twin("deploy", "promote", env=env)
    assert run.returncode == 0 and run.result["model"]["stage"] == "production"
