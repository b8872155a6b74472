"""`twin deploy` on Kubernetes: against a local HTTP server playing the Kubernetes API.

The InferenceService is the chart's own rendering (Standard and Knative modes); every patched object
is validated against the KServe 0.21 InferenceService schema the chart tests use.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import chart_render as cr
import pytest
from eval_fixtures import fake_model_folder, register, write_dataset
from fake_kube import FakeKube

ISVC_URL = "/apis/serving.kserve.io/v1beta1/namespaces/llm-twin/inferenceservices/llm-twin"


def chart_isvc(mode: str) -> dict[str, Any]:
    values = {"serving": {"deploymentMode": mode}}
    (isvc,) = cr.find(cr.objects(cr.render(values, api_versions=(cr.KSERVE_API,))), "InferenceService")
    assert cr.validate_object(isvc) == []
    return isvc


def container_env(predictor: dict[str, Any]) -> dict[str, str]:
    (container,) = [c for c in predictor["containers"] if c["name"] == "kserve-container"]
    return {e["name"]: e.get("value") for e in container.get("env") or []}


@pytest.fixture
def k8s(settings: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Any:
    def start(mode: str) -> FakeKube:
        fake = FakeKube(chart_isvc(mode)).__enter__()
        monkeypatch.setenv("TWIN_DEPLOY_TARGET", "kubernetes")
        monkeypatch.setenv("TWIN_DEPLOY_KUBECONFIG", str(fake.kubeconfig(tmp_path)))
        from twin_core.settings import get_settings

        get_settings.cache_clear()
        started.append(fake)
        return fake

    started: list[FakeKube] = []
    yield start
    for fake in started:
        fake.__exit__(None, None, None)


@pytest.fixture
def versions(settings: Any, tmp_path: Path) -> tuple[Any, Any]:
    dataset = write_dataset(settings)
    v1 = register(settings, fake_model_folder(tmp_path, "m1"), dataset, "base")
    v2 = register(settings, fake_model_folder(tmp_path, "m2"), dataset, "base")
    return v1, v2


def _settings() -> Any:
    from twin_core.settings import get_settings

    return get_settings()


def test_standard_mode_canary_promote(k8s: Any, versions: tuple[Any, Any]) -> None:
    from twin_core.deploy import rollout

    fake = k8s("Standard")
    _, v2 = versions
    out = rollout.start_canary(_settings(), v2.ref, 20)
    get, patch = fake.requests
    assert (get["method"], get["path"]) == ("GET", ISVC_URL)
    assert (patch["method"], patch["path"], patch["content_type"]) == (
        "PATCH",
        ISVC_URL,
        "application/merge-patch+json",
    )
    assert patch["authorization"] == "Bearer test-token"
    body = patch["body"]
    (canary,) = body["spec"]["canary"]
    assert canary["trafficPercent"] == 20 and canary["predictor"]["name"] == "ada-quillfeather-v0002"
    assert container_env(canary["predictor"]) == {
        "STORAGE_URI": v2.storage_uri,
        "TWIN_LLM_MODEL_ID": "/mnt/models",
        "TWIN_LLM_MODEL_VERSION": v2.ref,
    }
    assert "maxReplicas" not in canary["predictor"]  # autoscaling fields stay on the stable predictor
    assert body["metadata"]["annotations"] == {"llm-twin/canary-ref": v2.ref}
    assert cr.validate_object(fake.isvc) == []
    assert out["kubernetes"]["mode"] == "standard" and out["kubernetes"]["canary_percent"] == 20
    assert out["model"]["stage"] == "canary" and out["model"]["canary_percent"] == 20

    fake.requests.clear()
    out = rollout.promote(_settings(), ref=v2.ref)
    assert [r["method"] for r in fake.requests] == ["GET", "PATCH"]
    body = fake.requests[1]["body"]
    assert body["spec"]["canary"] is None and body["spec"]["predictor"]["name"] == "ada-quillfeather-v0002"
    assert fake.isvc["spec"].get("canary") is None
    assert container_env(fake.isvc["spec"]["predictor"])["TWIN_LLM_MODEL_VERSION"] == v2.ref
    assert fake.isvc["metadata"]["annotations"]["llm-twin/production-ref"] == v2.ref
    assert "llm-twin/canary-ref" not in fake.isvc["metadata"]["annotations"]
    assert cr.validate_object(fake.isvc) == []
    assert out["model"]["stage"] == "production"


def test_knative_mode_canary_rollback(k8s: Any, versions: tuple[Any, Any]) -> None:
    from twin_core.deploy import rollout

    fake = k8s("Knative")
    v1, _ = versions
    rollout.start_canary(_settings(), v1.ref, 10)
    body = fake.requests[1]["body"]
    predictor = body["spec"]["predictor"]
    assert predictor["canaryTrafficPercent"] == 10 and "canary" not in body["spec"]
    assert container_env(predictor)["STORAGE_URI"] == v1.storage_uri
    # the full container list is sent (a merge patch replaces lists): image and args are kept
    (orig,) = chart_isvc("Knative")["spec"]["predictor"]["containers"]
    (sent,) = predictor["containers"]
    assert sent["image"] == orig["image"] and sent["args"] == orig["args"]
    assert cr.validate_object(fake.isvc) == []

    fake.requests.clear()
    out = rollout.rollback(_settings(), ref=v1.ref, reason="test")
    assert fake.requests[1]["body"]["spec"] == {"predictor": {"canaryTrafficPercent": 0}}
    assert fake.isvc["spec"]["predictor"]["canaryTrafficPercent"] == 0
    assert cr.validate_object(fake.isvc) == []
    assert out["scope"] == "canary" and out["model"]["stage"] == "archived"


def test_promote_without_canary_exit_3_nothing_changed(k8s: Any, versions: tuple[Any, Any], twin: Any) -> None:
    fake = k8s("Standard")
    from twin_core.stores.registry import open_registry

    state = Path(open_registry(_settings()).store.uri("models/ada-quillfeather/registry.json"))
    before = state.read_bytes()
    run = twin("deploy", "promote")
    assert run.returncode == 3, run.stderr[-2000:]
    assert run.result["status"] == "error" and "no canary" in run.result["error"]
    assert fake.requests == [] and state.read_bytes() == before


def test_refused_patch_changes_nothing(k8s: Any, versions: tuple[Any, Any], monkeypatch: pytest.MonkeyPatch) -> None:
    from twin_core.deploy import rollout
    from twin_core.errors import InputError

    k8s("Standard")
    monkeypatch.setenv("TWIN_DEPLOY_ISVC_NAME", "missing")
    from twin_core.settings import get_settings

    get_settings.cache_clear()
    _, v2 = versions
    with pytest.raises(InputError, match="not found"):
        rollout.start_canary(get_settings(), v2.ref, 10)
    from twin_core.stores.registry import open_registry

    assert open_registry(get_settings()).get(v2.ref).stage == "candidate"


def test_status_reads_the_inference_service(k8s: Any, versions: tuple[Any, Any]) -> None:
    from twin_core.deploy import rollout

    k8s("Knative")
    out = rollout.status(_settings())
    assert out["target"] == "kubernetes"
    assert out["kubernetes"] == {
        "name": "llm-twin",
        "mode": "knative",
        "canary_percent": None,
        "canary_ref": None,
        "production_ref": None,
        "ready": None,
    }
    assert json.dumps(out)


def test_chart_lets_the_task_account_patch_only_the_twin() -> None:
    objs = cr.objects(cr.render(None, api_versions=(cr.KSERVE_API,)))
    (role,) = cr.find(objs, "Role", "llm-twin-deployer")
    assert role["rules"] == [
        {"apiGroups": ["serving.kserve.io"], "resources": ["inferenceservices"], "resourceNames": ["llm-twin"],
         "verbs": ["get", "patch"]}
    ]  # fmt: skip
    (binding,) = cr.find(objs, "RoleBinding", "llm-twin-deployer")
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": "llm-twin-tasks", "namespace": "llm-twin"}]
    assert all(cr.validate_object(o) == [] for o in (role, binding))
    assert cr.find(cr.objects(cr.render(None)), "Role", "llm-twin-deployer") == []  # no KServe: nothing to patch
