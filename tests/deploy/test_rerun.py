"""`twin deploy` re-run after a kill: a watch retried after its canary ended reports that end (it used to fail
with exit 3, "not a canary", so the DAG lost the rollback alert or the production Asset); a promote or
rollback killed between the InferenceService patch and the registry write completes on a re-run (the patch
used to be refused: "no canary"); a production rollback patches the cluster before the registry, so a re-run
never rolls back a second version."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from eval_fixtures import AUTHOR, fake_model_folder, register, write_dataset
from test_kserve_patch import ADA, k8s, versions  # noqa: F401 - fixtures


def _settings() -> Any:
    from twin_core.settings import get_settings

    return get_settings()


@pytest.fixture
def canary(settings: Any, tmp_path: Path) -> Any:
    from twin_core.deploy import rollout
    from twin_core.stores.registry import open_registry

    dataset = write_dataset(settings)
    v1 = register(settings, fake_model_folder(tmp_path, "m1"), dataset, "base")
    v2 = register(settings, fake_model_folder(tmp_path, "m2"), dataset, "base")
    open_registry(settings).set_stage(v1.ref, "production", "first production")
    rollout.start_canary(settings, v2.ref)
    return v2


def _no_wait(_: float) -> None:
    pass


def test_a_watch_rerun_after_its_fail_closed_rollback_reports_it(settings: Any, canary: Any) -> None:
    from twin_core.deploy.watch import watch
    from twin_core.stores.registry import open_registry

    first = watch(settings, ref=canary.ref, follow=True, timeout_s=0, sleep=_no_wait)  # no traffic: rolled back
    assert first["decision"] == "rollback" and first["rollout"]["model"]["stage"] == "archived"
    history = open_registry(settings).get(canary.ref).history
    again = watch(settings, ref=canary.ref, follow=True, timeout_s=0, sleep=_no_wait)
    assert (again["model"], again["decision"], again["already_ended"]) == (canary.ref, "rollback", True)
    assert "no promotion before the watch timeout" in again["reasons"][0]
    assert again["checks"] == first["checks"] and again["canary"]["requests"] == 0  # the numbers it rested on
    assert open_registry(settings).get(canary.ref).history == history  # nothing recorded twice


def test_a_watch_rerun_after_a_promotion_reports_it(settings: Any, canary: Any, twin: Any) -> None:
    from twin_core.deploy import rollout

    rollout.promote(settings, ref=canary.ref, reason="by hand")
    run = twin("deploy", "watch", canary.ref, "--follow", "--timeout", "1s")
    assert (run.returncode, run.result["decision"], run.result["model"]) == (0, "promote", canary.ref)


def _killed_once(monkeypatch: pytest.MonkeyPatch) -> None:
    """The registry write after the cluster patch dies once, as a SIGKILL between the two would."""
    from twin_core.stores.registry import ModelRegistry

    real = ModelRegistry.set_stage

    def dies(self: Any, *args: Any, **kwargs: Any) -> Any:
        monkeypatch.setattr(ModelRegistry, "set_stage", real)
        raise KeyboardInterrupt

    monkeypatch.setattr(ModelRegistry, "set_stage", dies)


def _killed_after_the_first_write(monkeypatch: pytest.MonkeyPatch, writers: list[tuple[Any, str]]) -> None:
    """Whichever of ``writers`` (owner, attribute) completes first is followed by a kill (once)."""
    killed: list[bool] = []

    def wrap(real: Any) -> Any:
        def write(*args: Any, **kwargs: Any) -> Any:
            out = real(*args, **kwargs)
            if not killed:
                killed.append(True)
                raise KeyboardInterrupt
            return out

        return write

    for owner, name in writers:
        monkeypatch.setattr(owner, name, wrap(getattr(owner, name)))


@pytest.mark.parametrize("mode", ["Standard", "Knative"])
@pytest.mark.parametrize("action", ["promote", "rollback"])
def test_promote_or_rollback_killed_after_the_patch_completes_on_rerun(
    k8s: Any,  # noqa: F811
    versions: tuple[Any, Any],  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
    mode: str,
    action: str,
) -> None:
    from twin_core.deploy import rollout
    from twin_core.stores.registry import open_registry

    fake = k8s(mode)
    _, v2 = versions
    rollout.start_canary(_settings(), v2.ref, 10)
    _killed_once(monkeypatch)
    with pytest.raises(KeyboardInterrupt):
        getattr(rollout, action)(_settings(), ref=v2.ref)
    assert open_registry(_settings()).get(v2.ref).stage == "canary"  # the cluster moved, the registry not yet
    cluster = json.dumps(fake.get(ADA), sort_keys=True)
    out = getattr(rollout, action)(_settings(), ref=v2.ref)
    assert out["model"]["stage"] == {"promote": "production", "rollback": "archived"}[action]
    assert json.dumps(fake.get(ADA), sort_keys=True) == cluster  # already there: not patched again
    assert out["kubernetes"]["canary_ref"] is None


@pytest.mark.parametrize("mode", ["Standard", "Knative"])
def test_a_rollback_after_a_promotion_killed_before_the_registry_is_refused(
    k8s: Any,  # noqa: F811
    versions: tuple[Any, Any],  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
    mode: str,
) -> None:
    """The cluster serves the promoted canary; the registry still says canary (the watch's fail-closed rollback,
    or a hand-run rollback, comes next). Archiving it would leave the cluster serving a version the registry
    calls rolled back: refused, nothing changed, and the promotion can still be finished."""
    from twin_core.deploy import rollout
    from twin_core.errors import InputError
    from twin_core.stores.registry import open_registry

    fake = k8s(mode)
    _, v2 = versions
    rollout.start_canary(_settings(), v2.ref, 10)
    _killed_once(monkeypatch)
    with pytest.raises(KeyboardInterrupt):
        rollout.promote(_settings(), ref=v2.ref)
    cluster = json.dumps(fake.get(ADA), sort_keys=True)
    with pytest.raises(InputError, match=rf"^{v2.ref} is already the production of .* in the cluster"):
        rollout.rollback(_settings(), ref=v2.ref)
    assert open_registry(_settings()).get(v2.ref).stage == "canary"
    assert json.dumps(fake.get(ADA), sort_keys=True) == cluster
    assert rollout.promote(_settings(), ref=v2.ref)["model"]["stage"] == "production"


def test_production_rollback_killed_between_its_writes_rolls_back_once_on_rerun(
    k8s: Any,  # noqa: F811
    settings: Any,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from twin_core.deploy import kserve, rollout
    from twin_core.stores.registry import ModelRegistry, open_registry

    fake = k8s("Standard")
    dataset = write_dataset(settings)
    refs = [register(settings, fake_model_folder(tmp_path, f"m{i}"), dataset, "base").ref for i in (1, 2, 3)]
    for ref in refs:
        open_registry(_settings()).set_stage(ref, "production", "release")
    _killed_after_the_first_write(monkeypatch, [(kserve, "pin"), (ModelRegistry, "rollback")])
    with pytest.raises(KeyboardInterrupt):
        rollout.rollback(_settings(), author=AUTHOR)
    out = rollout.rollback(_settings(), author=AUTHOR)  # the re-run
    reg = open_registry(_settings())
    assert out["model"]["ref"] == refs[1] and reg.production(AUTHOR).ref == refs[1]  # one version back, not two
    assert fake.get(ADA)["metadata"]["annotations"]["llm-twin/production-ref"] == refs[1]
