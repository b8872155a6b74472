"""The canary analysis in place (deploy/watch.py) on request-log rows written through the warehouse:
hold without traffic, step up, promote at the last step, not-due inside an interval, and each decision
in the registry history with its numbers. The clock is ``now``; quality numbers are injected."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from eval_fixtures import AUTHOR, fake_model_folder, register, write_dataset


def _rows(version: str, n: int, at: datetime) -> list[Any]:
    from twin_core.domain.inference import InferenceLog, LatencyMs

    return [
        InferenceLog(
            time=at + timedelta(milliseconds=i),
            status="ok",
            author=AUTHOR,
            query=f"q{i}",
            answer="a",
            model_version=version,
            latency_ms=LatencyMs(total=100.0),
        )
        for i in range(n)
    ]


def _good(*_: Any) -> Any:
    from twin_core.deploy.analysis import Quality

    return Quality(10, 10, 1.0, 1.0, (0.8,) * 10, (0.8,) * 10, style_interval=(-0.05, 0.05))


@pytest.fixture
def state(settings: Any, tmp_path: Path) -> dict[str, Any]:
    from twin_core.deploy import rollout
    from twin_core.stores.registry import open_registry

    dataset = write_dataset(settings)
    v1 = register(settings, fake_model_folder(tmp_path, "m1"), dataset, "base")
    v2 = register(settings, fake_model_folder(tmp_path, "m2"), dataset, "base")
    open_registry(settings).set_stage(v1.ref, "production", "first production")
    rollout.start_canary(settings, v2.ref)  # the first step weight of configs/deploy.yaml: 5 %
    return {"v1": v1, "v2": v2, "t0": datetime.now(UTC)}


def test_hold_step_not_due_and_promote(settings: Any, state: dict[str, Any]) -> None:
    from twin_core.deploy.analysis import canary_config
    from twin_core.deploy.watch import analyse
    from twin_core.stores.registry import open_registry
    from twin_core.stores.warehouse import open_warehouse

    v1, v2, t0 = state["v1"], state["v2"], state["t0"]
    reg = open_registry(settings)
    assert reg.get(v2.ref).canary_percent == 5
    cfg = canary_config({"interval": "1m", "step_weights": [5, 50], "min_requests": 10})
    hold = analyse(settings, author=AUTHOR, cfg=cfg, now=t0 + timedelta(minutes=1), quality=_good)
    assert hold["decision"] == "hold" and hold["canary"]["requests"] == 0
    assert reg.get(v2.ref).history[-1].numbers["analysis"]["result"] == "hold"
    wh = open_warehouse(settings)
    for row in _rows(v2.ref, 12, t0 + timedelta(seconds=70)) + _rows(v1.ref, 30, t0 + timedelta(seconds=70)):
        wh.append_inference_log(row)
    early = analyse(settings, author=AUTHOR, cfg=cfg, now=t0 + timedelta(seconds=100), quality=_good)
    assert early["decision"] == "not-due"
    step = analyse(settings, author=AUTHOR, cfg=cfg, now=t0 + timedelta(minutes=2), quality=_good)
    assert (step["decision"], step["weight"], step["next_weight"]) == ("step", 5, 50)
    assert (step["canary"]["counted"], step["production"]["counted"]) == (12, 30)
    assert reg.get(v2.ref).canary_percent == 50
    # the next window (minute 2 to 3) has no canary traffic: hold, even though the last one passed
    assert analyse(settings, author=AUTHOR, cfg=cfg, now=t0 + timedelta(minutes=3), quality=_good)["decision"] == "hold"
    for row in _rows(v2.ref, 12, t0 + timedelta(seconds=190)) + _rows(v1.ref, 30, t0 + timedelta(seconds=190)):
        wh.append_inference_log(row)
    done = analyse(settings, author=AUTHOR, cfg=cfg, now=t0 + timedelta(minutes=4), quality=_good)
    assert done["decision"] == "promote" and reg.production(AUTHOR).ref == v2.ref
    last = reg.get(v2.ref).history[-1]
    assert last.to_stage == "production" and last.numbers["canary"]["counted"] == 12
    assert last.numbers["analysis"]["window"] == [
        (t0 + timedelta(minutes=3)).isoformat(),
        (t0 + timedelta(minutes=4)).isoformat(),
    ]


def test_follow_without_a_verdict_rolls_back_at_the_timeout(settings: Any, state: dict[str, Any]) -> None:
    from twin_core.deploy.analysis import canary_config
    from twin_core.deploy.watch import watch
    from twin_core.stores.registry import open_registry

    cfg = canary_config({"interval": "1m"})
    out = watch(settings, author=AUTHOR, cfg=cfg, follow=True, timeout_s=0, sleep=lambda s: None)
    assert out["decision"] == "rollback" and "fail closed" in out["reasons"][-1]
    mv = open_registry(settings).get(state["v2"].ref)
    assert mv.stage == "archived" and mv.history[-1].numbers["analysis"]["result"] == "hold"


def test_the_timeout_rollback_after_not_due_answers_carries_the_last_analysis(
    settings: Any, state: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Analysed (hold), then only not-due answers until the timeout: the rollback and its alert state the
    last analysis's numbers (they had none: the not-due answer's)."""
    import twin_core.deploy.watch as watch_module
    from twin_core.deploy.analysis import canary_config
    from twin_core.stores.registry import open_registry

    clock = [0.0]  # the watch's monotonic clock, advanced by its sleeps only: no real waiting
    monkeypatch.setattr(watch_module.time, "monotonic", lambda: clock[0])
    sleeps: list[float] = []

    def sleep(seconds: float) -> None:
        sleeps.append(seconds)
        clock[0] += seconds

    cfg = canary_config({"interval": "1h"})  # every later analysis inside the hour is not-due
    out = watch_module.watch(settings, author=AUTHOR, cfg=cfg, follow=True, timeout_s=120, sleep=sleep)
    assert sleeps == [120.0]  # one more analysis (not-due), then the timeout
    assert out["decision"] == "rollback" and "fail closed" in out["reasons"][-1]
    assert out["analysis"]["result"] == "hold" and out["canary"]["requests"] == 0
    mv = open_registry(settings).get(state["v2"].ref)
    assert mv.stage == "archived" and mv.history[-1].numbers["analysis"]["result"] == "hold"


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
    bad = twin("deploy", "canary", "ada-quillfeather/v0099", env=env)
    assert bad.returncode == 3 and "unknown model version" in bad.result["error"]
    for now, error in (
        ("notadate", "--now 'notadate': not an ISO 8601 time (like 2026-11-22T17:00:00Z)"),
        ("2099-01-01T00:00:00", "--now '2099-01-01T00:00:00' is in the future: an analysis is saved at its time, "
         "and the rollout would wait for it"),
        ("2020-01-01T00:00:00Z", f"analysis time 2020-01-01T00:00:00+00:00 is before canary {v1.ref} started ("),
    ):  # fmt: skip
        refused = twin("deploy", "analyse", "--now", now, env=env)
        assert refused.returncode == 3 and refused.result["error"].startswith(error), refused.result
    held = twin("deploy", "analyse", env=env)  # none of the refused times was saved: this one is due
    assert held.returncode == 0 and held.result["decision"] == "hold", held.stderr[-2000:]
    run = twin("deploy", "rollback", env=env)
    assert run.returncode == 0 and run.result["model"]["stage"] == "archived"
    again = twin("deploy", "canary", v1.ref, env=env)
    assert again.returncode == 3 and "--force" in again.result["error"]
    forced = twin("deploy", "canary", v1.ref, "--force", env=env)
    assert forced.returncode == 0 and forced.result["model"]["canary_percent"] == 5
