"""`twin deploy` on Kubernetes: against a local HTTP server playing the Kubernetes API and KServe's webhook.

The InferenceServices are the chart's own rendering (one per author, Standard and Knative modes). The
fake API server merges each patch onto the object and applies KServe's admission rules
(tests/chart/kserve_rules.py, transcribed from KServe's inference_service_validation.go): a patch
KServe would refuse gets a 422, so every accepted step below is one KServe accepts. Every object is
also validated against the KServe 0.21 InferenceService schema the chart tests use.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import chart_render as cr
import kserve_rules
import pytest
from eval_fixtures import fake_model_folder, register, write_dataset
from fake_kube import FakeKube

ADA, OSKAR = "llm-twin-ada-quillfeather", "llm-twin-oskar-brennmoor"
ISVC_URL = "/apis/serving.kserve.io/v1beta1/namespaces/llm-twin/inferenceservices/" + ADA
BASE_URI = "hf://HuggingFaceTB/SmolLM2-135M-Instruct"
AUTHORS = [{"slug": "ada-quillfeather"}, {"slug": "oskar-brennmoor"}]


def chart_isvcs(mode: str, **predictor: Any) -> list[dict[str, Any]]:
    values = {"serving": {"deploymentMode": mode, "authors": AUTHORS, "predictor": predictor}}
    isvcs = cr.find(cr.objects(cr.render(values, api_versions=(cr.KSERVE_API,))), "InferenceService")
    for isvc in isvcs:
        assert cr.validate_object(isvc) == [] and kserve_rules.errors(isvc) == []
    return isvcs


def container_env(predictor: dict[str, Any]) -> dict[str, str]:
    (container,) = [c for c in predictor["containers"] if c["name"] == "kserve-container"]
    return {e["name"]: e.get("value") for e in container.get("env") or []}


@pytest.fixture
def k8s(settings: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Any:
    def start(mode: str, **predictor: Any) -> FakeKube:
        fake = FakeKube(*chart_isvcs(mode, **predictor)).__enter__()
        monkeypatch.setenv("TWIN_DEPLOY_TARGET", "kubernetes")
        monkeypatch.setenv("TWIN_DEPLOY_KUBECONFIG", str(fake.kubeconfig(tmp_path)))
        from twin_core.settings import get_settings

        get_settings.cache_clear()
        started.append(fake)
        return fake

    started: list[FakeKube] = []
    yield start
    for fake in started:
        assert fake.refused == []  # KServe's webhook accepted every patch twin deploy sent
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


def test_chart_stable_predictor_has_the_base_model() -> None:
    for isvc in chart_isvcs("Standard"):
        env = container_env(isvc["spec"]["predictor"])
        assert env == {"STORAGE_URI": BASE_URI, "TWIN_LLM_MODEL_ID": "/mnt/models", "TWIN_LLM_MODEL_VERSION": "base"}
        assert isvc["metadata"]["annotations"]["llm-twin/base-storage-uri"] == BASE_URI
    # the rule the chart now satisfies: without a model KServe refuses the first Standard canary
    (isvc, _) = chart_isvcs("Standard")
    container = isvc["spec"]["predictor"]["containers"][0]
    container["env"] = [e for e in container["env"] if e["name"] != "STORAGE_URI"]
    from twin_core.deploy import kserve

    _, errors = kserve_rules.apply(isvc, kserve.canary_patch(isvc, "ada-quillfeather/v0002", "s3://m/v2", 5))
    assert errors == [
        "canary requires a stable predictor with a model (multi-model serving is not supported with canary)"
    ]


def test_standard_mode_progressive_canary_then_promote(k8s: Any, versions: tuple[Any, Any]) -> None:
    from twin_core.deploy import rollout

    fake = k8s("Standard")
    oskar_before = json.dumps(fake.get(OSKAR), sort_keys=True)
    _, v2 = versions
    out = rollout.start_canary(_settings(), v2.ref, 5)
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
    assert canary["trafficPercent"] == 5 and canary["predictor"]["name"] == "v0002"
    assert container_env(canary["predictor"]) == {
        "STORAGE_URI": v2.storage_uri,
        "TWIN_LLM_MODEL_ID": "/mnt/models",
        "TWIN_LLM_MODEL_VERSION": v2.ref,
    }
    assert "maxReplicas" not in canary["predictor"]  # autoscaling fields stay on the stable predictor
    assert body["metadata"]["annotations"] == {"llm-twin/canary-ref": v2.ref}
    assert out["kubernetes"]["name"] == ADA and out["kubernetes"]["canary_percent"] == 5
    assert out["model"]["stage"] == "canary" and out["model"]["canary_percent"] == 5

    for step in (10, 25, 50):  # the progressive canary re-weights the same canary predictor
        out = rollout.start_canary(_settings(), v2.ref, step)
        assert out["kubernetes"]["canary_percent"] == step
        (canary,) = fake.get(ADA)["spec"]["canary"]
        assert (canary["predictor"]["name"], canary["trafficPercent"]) == ("v0002", step)
    assert cr.validate_object(fake.get(ADA)) == []

    fake.requests.clear()
    out = rollout.promote(_settings(), ref=v2.ref)
    assert [(r["method"], r["path"]) for r in fake.requests] == [("GET", ISVC_URL), ("PATCH", ISVC_URL)]
    stable = fake.get(ADA)["spec"]["predictor"]
    assert fake.get(ADA)["spec"].get("canary") is None and stable["name"] == "v0002"
    assert container_env(stable)["STORAGE_URI"] == v2.storage_uri and stable["maxReplicas"] == 1
    assert fake.get(ADA)["metadata"]["annotations"]["llm-twin/production-ref"] == v2.ref
    assert "llm-twin/canary-ref" not in fake.get(ADA)["metadata"]["annotations"]
    assert cr.validate_object(fake.get(ADA)) == []
    assert out["model"]["stage"] == "production"
    assert json.dumps(fake.get(OSKAR), sort_keys=True) == oskar_before  # the other author's twin untouched


def test_knative_mode_canary_rollback(k8s: Any, versions: tuple[Any, Any]) -> None:
    from twin_core.deploy import rollout

    fake = k8s("Knative")
    oskar_before = json.dumps(fake.get(OSKAR), sort_keys=True)
    v1, _ = versions
    rollout.start_canary(_settings(), v1.ref, 10)
    body = fake.requests[1]["body"]
    predictor = body["spec"]["predictor"]
    assert predictor["canaryTrafficPercent"] == 10 and "canary" not in body["spec"]
    assert container_env(predictor)["STORAGE_URI"] == v1.storage_uri
    # the full container list is sent (a merge patch replaces lists): image and args are kept
    (orig,) = chart_isvcs("Knative")[0]["spec"]["predictor"]["containers"]
    (sent,) = predictor["containers"]
    assert sent["image"] == orig["image"] and sent["args"] == orig["args"]
    assert cr.validate_object(fake.get(ADA)) == []
    rollout.start_canary(_settings(), v1.ref, 25)
    assert fake.requests[-1]["body"]["spec"]["predictor"]["canaryTrafficPercent"] == 25

    fake.requests.clear()
    out = rollout.rollback(_settings(), ref=v1.ref, reason="test")
    assert fake.requests[1]["body"]["spec"] == {"predictor": {"canaryTrafficPercent": 0}}
    assert fake.get(ADA)["spec"]["predictor"]["canaryTrafficPercent"] == 0
    assert cr.validate_object(fake.get(ADA)) == []
    assert out["scope"] == "canary" and out["model"]["stage"] == "archived"
    assert json.dumps(fake.get(OSKAR), sort_keys=True) == oskar_before


def test_two_authors_canaries_never_touch_each_other(k8s: Any, versions: tuple[Any, Any], tmp_path: Path) -> None:
    from twin_core.deploy import rollout
    from twin_core.stores.registry import open_registry

    fake = k8s("Standard")
    _, ada = versions
    oskar = open_registry(_settings()).register(
        "Oskar Brennmoor", fake_model_folder(tmp_path, "o1"), {"base_model": "base", "kind": "sft"}
    )
    rollout.start_canary(_settings(), ada.ref, 10)
    rollout.start_canary(_settings(), oskar.ref, 25)
    rollout.rollback(_settings(), ref=oskar.ref, reason="test")
    (canary,) = fake.get(ADA)["spec"]["canary"]
    assert (canary["trafficPercent"], container_env(canary["predictor"])["TWIN_LLM_MODEL_VERSION"]) == (10, ada.ref)
    assert fake.get(OSKAR)["spec"].get("canary") is None
    assert container_env(fake.get(OSKAR)["spec"]["predictor"])["STORAGE_URI"] == BASE_URI
    patched = {r["path"].rsplit("/", 1)[1] for r in fake.requests if r["method"] == "PATCH"}
    assert patched == {ADA, OSKAR}


@pytest.mark.parametrize("mode", ["Standard", "Knative"])
def test_rollback_to_the_base_model_keeps_a_model(mode: str) -> None:
    from twin_core.deploy import kserve

    isvc = chart_isvcs(mode)[0]
    steps = [
        lambda o: kserve.canary_patch(o, "ada-quillfeather/v0002", "s3://m/ada/v0002", 10),
        kserve.promote_patch,
        lambda o: kserve.pin_patch(o, None, None),  # the base model again
        lambda o: kserve.canary_patch(o, "ada-quillfeather/v0003", "s3://m/ada/v0003", 5),  # accepted again
    ]
    for step in steps:
        isvc, errors = kserve_rules.apply(isvc, step(isvc))
        assert errors == [] and cr.validate_object(isvc) == []
    pinned = kserve_rules.apply(isvc, kserve.rollback_patch(isvc))[0]
    pinned = kserve_rules.apply(pinned, kserve.pin_patch(pinned, None, None))[0]
    assert container_env(pinned["spec"]["predictor"])["STORAGE_URI"] == BASE_URI
    assert pinned["spec"]["predictor"].get("name") is None and pinned["spec"].get("canary") is None


@pytest.mark.parametrize("mode", ["Standard", "Knative"])
def test_huggingface_runtime_canary_moves_the_model_storage_uri(mode: str) -> None:
    from twin_core.deploy import kserve

    isvc = chart_isvcs(mode, runtime="huggingface", huggingface={"modelId": "HuggingFaceTB/SmolLM2-135M-Instruct"})[0]
    assert isvc["spec"]["predictor"]["model"]["storageUri"] == BASE_URI
    new, errors = kserve_rules.apply(isvc, kserve.canary_patch(isvc, "ada-quillfeather/v0002", "s3://m/v2", 10))
    assert errors == [] and cr.validate_object(new) == []
    canary = new["spec"]["canary"][0]["predictor"] if mode == "Standard" else new["spec"]["predictor"]
    assert canary["model"]["storageUri"] == "s3://m/v2"
    assert canary["model"]["args"] == isvc["spec"]["predictor"]["model"]["args"]
    promoted, errors = kserve_rules.apply(new, kserve.promote_patch(new))
    assert errors == [] and promoted["spec"]["predictor"]["model"]["storageUri"] == "s3://m/v2"


def test_author_without_an_inference_service_changes_nothing(k8s: Any, settings: Any, tmp_path: Path) -> None:
    from twin_core.deploy import rollout
    from twin_core.errors import InputError
    from twin_core.stores.registry import open_registry

    k8s("Standard")
    mv = open_registry(_settings()).register(
        "Nobody Listed", fake_model_folder(tmp_path, "n1"), {"base_model": "base", "kind": "sft"}
    )
    with pytest.raises(InputError, match="not found: list the author in the chart's serving.authors"):
        rollout.start_canary(_settings(), mv.ref, 10)
    assert open_registry(_settings()).get(mv.ref).stage == "candidate"


def test_author_the_deployer_role_does_not_name_is_exit_3_naming_both_causes(
    versions: tuple[Any, Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch, twin: Any
) -> None:
    """The chart's default `serving.authors: []`: one shared llm-twin, and a deployer Role naming only it. The
    GET of llm-twin-ada-quillfeather is answered 403 (RBAC), not 404: bad input (exit 3, not retried) naming
    both causes, the author missing from serving.authors and the deployer account's RBAC; one GET, no PATCH."""
    objs = cr.objects(cr.render(None, api_versions=(cr.KSERVE_API,)))
    (role,) = cr.find(objs, "Role", "llm-twin-deployer")
    (rule,) = role["rules"]
    assert rule["resourceNames"] == ["llm-twin"] == [i["metadata"]["name"] for i in cr.find(objs, "InferenceService")]
    _, v2 = versions
    with FakeKube(*cr.find(objs, "InferenceService"), allowed=rule["resourceNames"]) as fake:
        monkeypatch.setenv("TWIN_DEPLOY_TARGET", "kubernetes")
        monkeypatch.setenv("TWIN_DEPLOY_KUBECONFIG", str(fake.kubeconfig(tmp_path)))
        run = twin("deploy", "canary", v2.ref, "--percent", "10")
        assert [(r["method"], r["path"]) for r in fake.requests] == [("GET", ISVC_URL)]
    assert run.returncode == 3, run.stderr[-2000:]
    assert run.result["kind"] == "input"
    assert run.result["error"] == (
        f"GET InferenceService llm-twin/{ADA} forbidden (403): list the author in the chart's serving.authors (the "
        "deployer Role may get/patch only the InferenceServices the chart renders), or give the deployer service "
        "account (tasks.deployer.serviceAccountName) RBAC get and patch on it (Role and RoleBinding llm-twin-deployer)"
    )
    from twin_core.stores.registry import open_registry

    assert open_registry(_settings()).get(v2.ref).stage == "candidate"  # nothing changed


def test_promote_without_canary_exit_3_nothing_changed(k8s: Any, versions: tuple[Any, Any], twin: Any) -> None:
    fake = k8s("Standard")
    from twin_core.stores.registry import open_registry

    state = Path(open_registry(_settings()).store.uri("models/ada-quillfeather/registry.json"))
    before = state.read_bytes()
    run = twin("deploy", "promote")
    assert run.returncode == 3, run.stderr[-2000:]
    assert run.result["status"] == "error" and "no canary" in run.result["error"]
    assert fake.requests == [] and state.read_bytes() == before


def test_status_reads_each_authors_inference_service(k8s: Any, versions: tuple[Any, Any]) -> None:
    from twin_core.deploy import rollout

    k8s("Knative")
    out = rollout.status(_settings())
    assert out["target"] == "kubernetes"
    assert out["kubernetes"] == {
        "ada-quillfeather": {
            "name": ADA,
            "mode": "knative",
            "runtime": "twin",
            "canary_percent": None,
            "canary_ref": None,
            "production_ref": None,
            "ready": None,
        }
    }
    assert json.dumps(out)


def test_chart_lets_the_deployer_account_patch_only_the_twins() -> None:
    values = {"serving": {"authors": AUTHORS}}
    objs = cr.objects(cr.render(values, api_versions=(cr.KSERVE_API,)))
    (role,) = cr.find(objs, "Role", "llm-twin-deployer")
    assert role["rules"] == [
        {"apiGroups": ["serving.kserve.io"], "resources": ["inferenceservices"], "resourceNames": [ADA, OSKAR],
         "verbs": ["get", "patch"]}
    ]  # fmt: skip
    (binding,) = cr.find(objs, "RoleBinding", "llm-twin-deployer")
    # the twin deploy steps' own account (a token mounted), not the other task pods' (no token)
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": "llm-twin-deployer", "namespace": "llm-twin"}]
    assert all(cr.validate_object(o) == [] for o in (role, binding))
    assert cr.find(cr.objects(cr.render(None)), "Role", "llm-twin-deployer") == []  # no KServe: nothing to patch


def test_huggingface_runtime_canary_through_the_cli(k8s: Any, versions: tuple[Any, Any], twin: Any) -> None:
    fake = k8s("Standard", runtime="huggingface")
    _, v2 = versions
    run = twin("deploy", "canary", v2.ref, "--percent", "10")
    assert run.returncode == 0, run.stderr[-2000:]
    cluster = run.result["kubernetes"]
    assert (cluster["name"], cluster["runtime"], cluster["canary_percent"]) == (ADA, "huggingface", 10)
    (canary,) = fake.get(ADA)["spec"]["canary"]
    assert canary["predictor"]["model"]["storageUri"] == v2.storage_uri


def test_predictor_without_container_or_model_is_a_clear_error() -> None:
    from twin_core.deploy import kserve
    from twin_core.errors import InputError

    isvc = chart_isvcs("Standard")[0]
    isvc["spec"]["predictor"].pop("containers")
    with pytest.raises(InputError, match="neither containers nor a model"):
        kserve.canary_patch(isvc, "ada-quillfeather/v0002", "s3://m/v2", 10)
