"""`helm install --wait` returns and `helm upgrade` keeps what runs: the model `twin deploy` put on each
InferenceService, and Airflow's JWT secret and API secret key.

Offline renders see no cluster, so a copy of the chart answers each `lookup` (chart_render.answering_lookup)
with the object the cluster would hold; an upgrade is then applied as Helm 3 applies it to a custom
resource: the merge patch from the previous manifest to the new one (chart_render.create_merge_patch).
"""

from __future__ import annotations

import base64
import copy

import chart_render as cr  # noqa: E402
import helm_python  # noqa: F401 - a dev dependency: missing is a failure, not a skip
import kserve_rules  # noqa: E402
import kubernetes_validate  # noqa: F401 - a dev dependency: missing is a failure, not a skip
import pytest

# --------------------------------------------------------------------------- helm install --wait


@pytest.mark.parametrize("variant", [None, "kind", "gpu", "external"])
def test_airflow_migration_and_user_jobs_are_not_hooks_so_helm_wait_returns(tmp_path, variant):
    """The Airflow pods wait for the database migration, and Helm runs post-install hooks only after
    `--wait` saw every pod ready: as hooks (the Airflow chart's default) every documented `helm install
    --wait` hung. The Airflow chart receives, for each values set the docs install with, plain Jobs
    without custom env (a Job's pod template cannot change on upgrade)."""
    chart = cr.with_stub_dependencies(tmp_path)
    values = cr.ci_values(variant) if variant else None
    airflow, _ = cr.stub_airflow(cr.objects(cr.render(values, chart_dir=chart)))
    for job in ("migrateDatabaseJob", "createUserJob"):
        assert airflow[job] == {"useHelmHooks": False, "applyCustomEnv": False}, job


# --------------------------------------------------------------------------- the deployed model

CALL = 'lookup "serving.kserve.io/v1beta1" "InferenceService" $.Release.Namespace $twin.name'
ADA = "llm-twin-ada-quillfeather"
OSKAR = "llm-twin-oskar-brennmoor"
REF = "ada-quillfeather/v0002"
URI = "s3://llm-twin/models/ada-quillfeather/v0002/merged"
BASE = "hf://HuggingFaceTB/SmolLM2-135M-Instruct"
AUTHORS = [{"slug": "ada-quillfeather"}, {"slug": "oskar-brennmoor"}]


def _image(tag: str) -> str:
    return f"ghcr.io/llm-twin/twin-serving:{tag}"


def _values(mode: str, tag: str = "0.1.0", **serving) -> dict:
    return {"images": {"tag": tag}, "serving": {"deploymentMode": mode, "authors": AUTHORS, **serving}}


def _isvcs(objs: list[dict]) -> dict[str, dict]:
    isvcs = {i["metadata"]["name"]: i for i in cr.find(objs, "InferenceService")}
    for isvc in isvcs.values():
        assert cr.validate_object(isvc) == [] and kserve_rules.errors(isvc) == []
    return isvcs


def _install(values: dict) -> dict[str, dict]:
    return _isvcs(cr.objects(cr.render(values, api_versions=(cr.KSERVE_API,))))


def _upgrade(tmp_path, values: dict, live: dict[str, dict]) -> dict[str, dict]:
    """The manifests of `helm upgrade` while the cluster holds `live` (name -> InferenceService)."""
    chart = cr.answering_lookup(tmp_path, "inferenceservice.yaml", CALL, live)
    return _isvcs(cr.objects(cr.render(values, api_versions=(cr.KSERVE_API,), chart_dir=chart, upgrade=True)))


def _apply(live: dict, previous: dict, manifest: dict) -> dict:
    """What the cluster holds after Helm's patch, which KServe's webhook accepts."""
    after, errors = kserve_rules.apply(live, cr.create_merge_patch(previous, manifest))
    assert errors == [] and cr.validate_object(after) == []
    return after


def _deploy(live: dict, patch: dict) -> dict:
    """`twin deploy`'s merge patch on the live object, which KServe's webhook accepts."""
    after, errors = kserve_rules.apply(live, patch)
    assert errors == []
    return after


def _container(predictor: dict) -> dict:
    (container,) = [c for c in predictor["containers"] if c["name"] == "kserve-container"]
    return container


def _model(predictor: dict) -> dict[str, str]:
    env = {e["name"]: e.get("value") for e in _container(predictor).get("env") or []}
    return {k: env[k] for k in ("STORAGE_URI", "TWIN_LLM_MODEL_ID", "TWIN_LLM_MODEL_VERSION")}


def _refs(isvc: dict) -> dict[str, str]:
    annotations = isvc["metadata"]["annotations"]
    return {k: annotations[k] for k in ("llm-twin/canary-ref", "llm-twin/production-ref") if k in annotations}


def test_standard_upgrades_keep_the_canary_then_the_promoted_model(tmp_path):
    """Standard mode: a canary of v0002, `helm upgrade` to a new image (the canary keeps its model, name
    and share and runs the new image), promote, `helm upgrade` again: production stays on v0002 with its
    name, the image changes. The other author's InferenceService, untouched by twin deploy, stays on the
    base model."""
    from twin_core.deploy import kserve

    installed = _install(_values("Standard"))
    live = _deploy(installed[ADA], kserve.canary_patch(installed[ADA], REF, URI, 10))

    upgraded = _upgrade(tmp_path, _values("Standard", "0.2.0"), {ADA: live, OSKAR: installed[OSKAR]})
    live = _apply(live, installed[ADA], upgraded[ADA])
    stable, (canary,) = live["spec"]["predictor"], live["spec"]["canary"]
    assert _model(stable) == kserve.model_env("base", BASE) and "name" not in stable
    assert canary["trafficPercent"] == 10 and canary["predictor"]["name"] == "v0002"
    assert _model(canary["predictor"]) == kserve.model_env(REF, URI)
    assert "maxReplicas" not in canary["predictor"]  # as canary_patch builds it (KServe refuses it)
    assert {_container(stable)["image"], _container(canary["predictor"])["image"]} == {_image("0.2.0")}
    assert _refs(live) == {"llm-twin/canary-ref": REF}
    assert live["spec"]["transformer"]["containers"][0]["image"] == _image("0.2.0")

    live = _deploy(live, kserve.promote_patch(live))
    again = _upgrade(tmp_path, _values("Standard", "0.3.0"), {ADA: live, OSKAR: upgraded[OSKAR]})
    live = _apply(live, upgraded[ADA], again[ADA])
    stable = live["spec"]["predictor"]
    assert _model(stable) == kserve.model_env(REF, URI) and stable["name"] == "v0002"
    assert "canary" not in live["spec"] and _refs(live) == {"llm-twin/production-ref": REF}
    assert _container(stable)["image"] == _image("0.3.0")
    assert stable["maxReplicas"] == installed[ADA]["spec"]["predictor"]["maxReplicas"]
    assert _model(again[OSKAR]["spec"]["predictor"]) == kserve.model_env("base", BASE)


def test_knative_upgrades_keep_the_canary_share_and_a_rollback(tmp_path):
    """Knative mode: the canary's model and canaryTrafficPercent survive an upgrade with a new image, a
    rollback's share 0 survives the next one, and a set serving.canaryTrafficPercent still overrides."""
    from twin_core.deploy import kserve

    installed = _install(_values("Knative"))
    live = _deploy(installed[ADA], kserve.canary_patch(installed[ADA], REF, URI, 10))

    upgraded = _upgrade(tmp_path, _values("Knative", "0.2.0"), {ADA: live})
    live = _apply(live, installed[ADA], upgraded[ADA])
    predictor = live["spec"]["predictor"]
    assert predictor["canaryTrafficPercent"] == 10 and _model(predictor) == kserve.model_env(REF, URI)
    assert _container(predictor)["image"] == _image("0.2.0") and _refs(live) == {"llm-twin/canary-ref": REF}

    live = _deploy(live, kserve.rollback_patch(live))
    again = _upgrade(tmp_path, _values("Knative", "0.3.0"), {ADA: live})
    live = _apply(live, upgraded[ADA], again[ADA])
    assert live["spec"]["predictor"]["canaryTrafficPercent"] == 0 and _refs(live) == {}
    assert _model(live["spec"]["predictor"]) == kserve.model_env(REF, URI)

    override = _upgrade(tmp_path, _values("Knative", "0.3.0", canaryTrafficPercent=25), {ADA: live})
    assert override[ADA]["spec"]["predictor"]["canaryTrafficPercent"] == 25


def test_huggingface_runtime_upgrade_keeps_the_promoted_storage_uri(tmp_path):
    from twin_core.deploy import kserve

    hf = {"runtime": "huggingface", "huggingface": {"modelId": "HuggingFaceTB/SmolLM2-135M-Instruct"}}
    installed = _install(_values("Standard", predictor=hf))
    live = _deploy(installed[ADA], kserve.canary_patch(installed[ADA], REF, URI, 10))
    live = _deploy(live, kserve.promote_patch(live))
    hf_args = {**hf, "huggingface": {**hf["huggingface"], "extraArgs": ["--max_model_len=4096"]}}
    upgraded = _upgrade(tmp_path, _values("Standard", predictor=hf_args), {ADA: live})
    live = _apply(live, installed[ADA], upgraded[ADA])
    predictor = live["spec"]["predictor"]
    assert predictor["model"]["storageUri"] == URI and predictor["name"] == "v0002"
    assert "--max_model_len=4096" in predictor["model"]["args"]  # the values' part changed
    assert _refs(live) == {"llm-twin/production-ref": REF}


def test_an_inference_service_twin_deploy_never_touched_follows_the_values(tmp_path):
    """No canary, no production ref, the install's base model: a new serving.baseModel reaches it (and the
    base annotation), while a deployed one keeps its model."""
    from twin_core.deploy import kserve

    installed = _install(_values("Standard"))
    new_base = {"baseModel": {"storageUri": "hf://HuggingFaceTB/SmolLM2-360M-Instruct", "version": "base"}}
    promoted = _deploy(installed[ADA], kserve.canary_patch(installed[ADA], REF, URI, 10))
    promoted = _deploy(promoted, kserve.promote_patch(promoted))
    upgraded = _upgrade(tmp_path, _values("Standard", **new_base), {ADA: promoted, OSKAR: installed[OSKAR]})
    oskar = _apply(installed[OSKAR], installed[OSKAR], upgraded[OSKAR])
    assert _model(oskar["spec"]["predictor"]) == kserve.model_env("base", new_base["baseModel"]["storageUri"])
    assert oskar["metadata"]["annotations"]["llm-twin/base-storage-uri"] == new_base["baseModel"]["storageUri"]
    ada = _apply(promoted, installed[ADA], upgraded[ADA])
    assert _model(ada["spec"]["predictor"]) == kserve.model_env(REF, URI)


def test_without_a_live_inference_service_the_values_choose_the_model(tmp_path):
    """Only what the cluster holds is kept: an InferenceService not there yet (a new author, or no
    cluster to read) starts on the values' model, as at install."""
    values = _values("Standard", authors=[{**AUTHORS[0], "storageUri": URI, "modelVersion": REF}])
    upgraded = _upgrade(tmp_path, values, {})
    assert upgraded == _install(values)
    from twin_core.deploy import kserve

    assert _model(upgraded[ADA]["spec"]["predictor"]) == kserve.model_env(REF, URI)
    assert _refs(upgraded[ADA]) == {"llm-twin/production-ref": REF}


# --------------------------------------------------------------------------- Airflow's keys

SECRET_CALL = 'lookup "v1" "Secret" $.Release.Namespace $name'
JWT, API = "llm-twin-airflow-jwt-secret", "llm-twin-airflow-api-secret-key"


def _keys(objs: list[dict]) -> dict[str, dict]:
    secrets = {s["metadata"]["name"]: s for s in cr.find(objs, "Secret") if s["metadata"]["name"] in (JWT, API)}
    for secret in secrets.values():
        assert cr.validate_object(secret) == []
        assert secret["metadata"]["annotations"] == {"helm.sh/resource-policy": "keep"}
    return {name: s["data"] for name, s in secrets.items()}


def test_airflow_keys_are_generated_once_and_kept_by_upgrades(tmp_path):
    """The Airflow chart regenerates its JWT secret and API secret key (randAlphaNum) at every upgrade
    unless it is given Secrets: it gets this chart's, generated at install and read back by every
    upgrade."""
    chart = cr.with_stub_dependencies(tmp_path / "stubs")
    objs = cr.objects(cr.render(None, chart_dir=chart))
    airflow, _ = cr.stub_airflow(objs)
    assert (airflow["jwtSecretName"], airflow["apiSecretKeySecretName"]) == (JWT, API)
    installed = _keys(objs)
    assert {name: set(data) for name, data in installed.items()} == {JWT: {"jwt-secret"}, API: {"api-secret-key"}}
    assert len(base64.b64decode(installed[JWT]["jwt-secret"])) == 128
    assert len(base64.b64decode(installed[API]["api-secret-key"])) == 64

    live = {name: {"data": data} for name, data in installed.items()}
    upgraded = cr.answering_lookup(tmp_path / "lookup", "airflow-keys.yaml", SECRET_CALL, live)
    assert _keys(cr.objects(cr.render(None, chart_dir=upgraded, upgrade=True))) == installed
    # an install without the cluster's answer generates new ones (the values are random)
    assert _keys(cr.objects(cr.render(None))) != installed


def test_airflow_keys_in_one_secret_of_your_own(tmp_path):
    """Both names may be one Secret (one object with both keys); airflowKeys.generate=false renders none
    and leaves the Airflow chart pointed at yours."""
    one = {"airflow": {"jwtSecretName": "airflow-keys", "apiSecretKeySecretName": "airflow-keys"}}
    (secret,) = [s for s in cr.find(cr.objects(cr.render(one)), "Secret") if s["metadata"]["name"] == "airflow-keys"]
    assert set(secret["data"]) == {"jwt-secret", "api-secret-key"} and cr.validate_object(secret) == []
    chart = cr.with_stub_dependencies(tmp_path)
    objs = cr.objects(cr.render({**copy.deepcopy(one), "airflowKeys": {"generate": False}}, chart_dir=chart))
    assert [s for s in cr.find(objs, "Secret") if s["metadata"]["name"] == "airflow-keys"] == []
    airflow, _ = cr.stub_airflow(objs)
    assert airflow["jwtSecretName"] == airflow["apiSecretKeySecretName"] == "airflow-keys"
