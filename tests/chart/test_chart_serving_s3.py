"""s3:// models on the InferenceServices: KServe's storage initializer gets the artifact store's endpoint
and credentials from the Secret the serving service account lists, and serving may reach that store.

Without them the initializer went to AWS with no credentials, never to the dev store, and no
InferenceService pointed at an s3:// model (an author's weights, every registry version `twin deploy`
rolls out) became Ready. What the initializer receives is computed from the rendered ServiceAccount and
Secret by KServe's own rules, transcribed in kserve_credentials.py.
"""

from __future__ import annotations

import json
import shutil

import chart_render as cr  # noqa: E402  (tests/chart/conftest.py puts it on sys.path)
import helm_python  # noqa: F401 - a dev dependency: missing is a failure, not a skip
import kserve_credentials as kc  # noqa: E402
import kubernetes_validate  # noqa: F401 - a dev dependency: missing is a failure, not a skip
import pytest

SA = "llm-twin-serving"
SECRET = "llm-twin-serving-s3"
# the Hugging Face token's, listed too while a served model is hf:// (the default base model):
# test_chart_serving_hf.py
HF_SECRET = "llm-twin-serving-hf"
DEV_ENDPOINT = "llm-twin-object-store.llm-twin.svc:8333"
EXTERNAL = {"devObjectStore": {"enabled": False}}
INTERNET_EXCEPT = ["10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "169.254.0.0/16"]
AUTHORS = [
    {"slug": "ada", "storageUri": "s3://llm-twin/artifacts/models/ada/v0003/merged", "modelVersion": "ada/v0003"},
    {"slug": "oskar"},
]


def _render(values: dict | None) -> list[dict]:
    objs = cr.objects(cr.render(values, api_versions=(cr.KSERVE_API,)))
    assert [e for o in objs for e in cr.validate_object(o)] == []
    return objs


def _serving_secrets(objs: list[dict]) -> list[dict]:
    """The Secrets of serving (the others are Airflow's keys, templates/airflow-keys.yaml)."""
    return [s for s in cr.find(objs, "Secret") if s["metadata"]["labels"]["app.kubernetes.io/component"] == "serving"]


def _initializer_env(objs: list[dict]) -> dict:
    """The storage initializer's S3 variables for every serving pod: all run as one account."""
    accounts = {c["serviceAccountName"] for _, c in _serving_components(objs)}
    assert accounts == {SA}
    (sa,) = cr.find(objs, "ServiceAccount", SA)
    secrets = {s["metadata"]["name"]: s for s in cr.find(objs, "Secret")}
    return kc.as_dict(kc.storage_initializer_env(sa, secrets))


def _serving_components(objs: list[dict]) -> list[tuple[str, dict]]:
    return [(owner, spec) for owner, spec in cr.pod_specs(objs) if owner.startswith("InferenceService/")]


def _settings_endpoint(objs: list[dict]) -> str:
    (cm,) = [c for c in cr.find(objs, "ConfigMap", "llm-twin-settings") if c["metadata"]["namespace"] == cr.NAMESPACE]
    return cm["data"].get("TWIN_S3_ENDPOINT_URL", "")


def _egress(objs: list[dict], name: str) -> list[dict]:
    (policy,) = cr.find(objs, "NetworkPolicy", name)
    return policy["spec"]["egress"]


def _dev_store_rule(port: int = 8333) -> dict:
    return {
        "to": [
            {
                "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": cr.NAMESPACE}},
                "podSelector": {
                    "matchLabels": {
                        "app.kubernetes.io/name": "llm-twin",
                        "app.kubernetes.io/instance": cr.RELEASE,
                        "app.kubernetes.io/component": "object-store",
                    }
                },
            }
        ],
        "ports": [{"port": port, "protocol": "TCP"}],
    }


def _internet_ports(egress: list[dict]) -> set[int]:
    rules = [r for r in egress if r.get("to") and all("ipBlock" in p for p in r["to"])]
    rules = [r for r in rules if r["to"][0]["ipBlock"]["cidr"] == "0.0.0.0/0"]
    for rule in rules:
        assert rule["to"] == [{"ipBlock": {"cidr": "0.0.0.0/0", "except": INTERNET_EXCEPT}}]
    return {p["port"] for r in rules for p in r["ports"]}


# --------------------------------------------------------------------------- the dev store


@pytest.mark.parametrize("runtime", ["twin", "huggingface"])
def test_dev_store_models_are_read_anonymously_from_the_dev_store(runtime):
    """The default install (dev store, no authentication): an author's s3:// weights and every registry
    version are read from the dev store's in-cluster address, unsigned."""
    objs = _render({"serving": {"authors": AUTHORS, "predictor": {"runtime": runtime}}})
    (sa,) = cr.find(objs, "ServiceAccount", SA)
    assert sa["secrets"] == [{"name": SECRET}, {"name": HF_SECRET}] and sa["automountServiceAccountToken"] is False
    (secret,) = cr.find(objs, "Secret", SECRET)
    assert secret["metadata"]["namespace"] == cr.NAMESPACE
    assert secret["metadata"]["annotations"] == {
        "serving.kserve.io/s3-endpoint": DEV_ENDPOINT,
        "serving.kserve.io/s3-usehttps": "0",
        "serving.kserve.io/s3-verifyssl": "1",
        "serving.kserve.io/s3-useanoncredential": "true",
    }
    # placeholders (the store checks nothing): KServe needs both keys to take the Secret as S3's
    assert secret["stringData"] == {"AWS_ACCESS_KEY_ID": "anonymous", "AWS_SECRET_ACCESS_KEY": "anonymous"}
    assert "data" not in secret
    # both components of both InferenceServices run as the account (the predictor downloads)
    components = _serving_components(objs)
    assert sorted(o for o, _ in components) == [
        "InferenceService/llm-twin-ada/predictor",
        "InferenceService/llm-twin-ada/transformer",
        "InferenceService/llm-twin-oskar/predictor",
        "InferenceService/llm-twin-oskar/transformer",
    ]
    assert _initializer_env(objs) == {
        "AWS_ACCESS_KEY_ID": ("secretKeyRef", SECRET, "AWS_ACCESS_KEY_ID"),
        "AWS_SECRET_ACCESS_KEY": ("secretKeyRef", SECRET, "AWS_SECRET_ACCESS_KEY"),
        "S3_USE_HTTPS": "0",
        "S3_ENDPOINT": DEV_ENDPOINT,
        "AWS_ENDPOINT_URL": f"http://{DEV_ENDPOINT}",
        "S3_VERIFY_SSL": "1",
        "awsAnonymousCredential": "true",
    }
    # the very endpoint the task pods write the models to
    assert _settings_endpoint(objs) == f"http://{DEV_ENDPOINT}"
    # serving reaches the dev store pod, and nothing on the internet for s3:// models
    assert _dev_store_rule() in _egress(objs, "llm-twin-serving")


def test_registry_versions_need_the_credentials_even_with_a_hub_base_model():
    """The defaults serve hf:// only at install, but `twin deploy` points the predictors at registry
    versions in the artifact store (s3://): the account lists the Secret from the start."""
    objs = _render(None)
    (sa,) = cr.find(objs, "ServiceAccount", SA)
    assert sa["secrets"] == [{"name": SECRET}, {"name": HF_SECRET}]
    assert _initializer_env(objs)["AWS_ENDPOINT_URL"] == f"http://{DEV_ENDPOINT}"


def test_dev_store_stays_reachable_for_s3_models_when_registry_reads_are_off():
    """servingReadsArtifacts=false no longer cuts the model downloads: servingDownloadsModels covers
    s3:// models as it covers hf:// ones; both off, serving reaches no store for them."""
    off = {"networkPolicy": {"servingReadsArtifacts": False}}
    assert _dev_store_rule() in _egress(_render(off), "llm-twin-serving")
    both_off = {"networkPolicy": {"servingReadsArtifacts": False, "servingDownloadsModels": False}}
    assert '"object-store"' not in json.dumps(_egress(_render(both_off), "llm-twin-serving"))


# --------------------------------------------------------------------------- an external store


def test_external_s3_compatible_endpoint_comes_from_the_store_values():
    values = {
        "artifacts": {**EXTERNAL, "s3EndpointUrl": "https://s3.example.com:9443"},
        "serving": {"authors": AUTHORS, "s3Credentials": {"region": "eu-west-1", "verifySsl": False}},
    }
    objs = _render(values)
    (secret,) = cr.find(objs, "Secret", SECRET)
    assert secret["metadata"]["annotations"] == {
        "serving.kserve.io/s3-endpoint": "s3.example.com:9443",
        "serving.kserve.io/s3-usehttps": "1",
        "serving.kserve.io/s3-verifyssl": "0",
        "serving.kserve.io/s3-region": "eu-west-1",
    }
    # no value in the chart: the keys are copied from secrets.existingSecret at install (Helm's lookup),
    # which an offline render cannot read, so KServe skips the Secret and NOTES says so
    assert "stringData" not in secret and "data" not in secret
    notes = cr.notes(cr.render(values, api_versions=(cr.KSERVE_API,)))
    assert f'WARNING: Secret "{SECRET}" holds no S3 keys' in notes
    assert "serving.s3Credentials.existingSecret" in notes
    # what the initializer gets once the keys are there (as `helm install` copies them)
    with_keys = {**secret, "data": {"AWS_ACCESS_KEY_ID": "QUtJQQ==", "AWS_SECRET_ACCESS_KEY": "c2VjcmV0"}}
    (sa,) = cr.find(objs, "ServiceAccount", SA)
    secrets = {s["metadata"]["name"]: s for s in cr.find(objs, "Secret")} | {SECRET: with_keys}
    env = kc.as_dict(kc.storage_initializer_env(sa, secrets))
    assert env == {
        "AWS_ACCESS_KEY_ID": ("secretKeyRef", SECRET, "AWS_ACCESS_KEY_ID"),
        "AWS_SECRET_ACCESS_KEY": ("secretKeyRef", SECRET, "AWS_SECRET_ACCESS_KEY"),
        "S3_USE_HTTPS": "1",
        "S3_ENDPOINT": "s3.example.com:9443",
        "AWS_ENDPOINT_URL": "https://s3.example.com:9443",
        "S3_VERIFY_SSL": "0",
        "AWS_DEFAULT_REGION": "eu-west-1",
    }
    assert env["AWS_ENDPOINT_URL"] == _settings_endpoint(objs)


def test_keys_are_copied_from_the_twin_secret_when_helm_reads_it(tmp_path):
    """At `helm install` / `upgrade` Helm's lookup reads secrets.existingSecret: the chart's Secret gets
    its two S3 keys (and nothing else of it), and NOTES stops warning. Offline renders see no cluster,
    so a copy of the chart answers the lookup with a Secret."""
    chart = tmp_path / "llm-twin"
    shutil.copytree(cr.CHART, chart)
    call = 'lookup "v1" "Secret" .Release.Namespace .Values.secrets.existingSecret'
    found = (
        'dict "data" (dict "AWS_ACCESS_KEY_ID" "QUtJQQ==" "AWS_SECRET_ACCESS_KEY" "c2VjcmV0"'
        ' "TWIN_SERVE_API_KEYS" "e30=")'
    )
    for template in ("serving-s3-secret.yaml", "NOTES.txt"):
        path = chart / "templates" / template
        assert call in path.read_text(), template
        path.write_text(path.read_text().replace(call, found))
    rendered = cr.render({"artifacts": EXTERNAL}, api_versions=(cr.KSERVE_API,), chart_dir=chart)
    (secret,) = cr.find(cr.objects(rendered), "Secret", SECRET)
    assert secret["data"] == {"AWS_ACCESS_KEY_ID": "QUtJQQ==", "AWS_SECRET_ACCESS_KEY": "c2VjcmV0"}
    assert "stringData" not in secret and cr.validate_object(secret) == []
    assert "holds no S3 keys" not in cr.notes(rendered)


def test_external_endpoint_port_is_reachable():
    """Serving (the storage initializer, the registry) and the task pods reach the endpoint's own port
    outside private ranges; it was 443 whatever artifacts.s3EndpointUrl said."""
    objs = _render({"artifacts": {**EXTERNAL, "s3EndpointUrl": "https://s3.example.com:9443"}})
    assert _internet_ports(_egress(objs, "llm-twin-serving")) == {9443, 443}  # 443: the hf:// base model
    assert _internet_ports(_egress(objs, "llm-twin-tasks")) == {80, 443, 9443}
    plain = _render({"artifacts": {**EXTERNAL, "s3EndpointUrl": "http://s3.example.com"}})
    assert 80 in _internet_ports(_egress(plain, "llm-twin-serving"))


def test_aws_s3_has_no_endpoint_annotation():
    objs = _render({"artifacts": EXTERNAL})
    (secret,) = cr.find(objs, "Secret", SECRET)
    assert "serving.kserve.io/s3-endpoint" not in secret["metadata"]["annotations"]
    assert _internet_ports(_egress(objs, "llm-twin-serving")) == {443}


def test_in_cluster_s3_service_is_reached_in_its_namespace():
    """An S3-compatible service in the cluster (MinIO at <service>.<namespace>.svc): private addresses,
    which the internet rule excludes, so serving and the task pods get its namespace on its port."""
    url = "http://minio.storage.svc.cluster.local:9000"
    objs = _render({"artifacts": {**EXTERNAL, "s3EndpointUrl": url}})
    rule = {
        "to": [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "storage"}}}],
        "ports": [{"port": 9000, "protocol": "TCP"}],
    }
    for policy in ("llm-twin-serving", "llm-twin-tasks"):
        egress = _egress(objs, policy)
        assert rule in egress, policy
        assert 9000 not in _internet_ports(egress), policy
    (secret,) = cr.find(objs, "Secret", SECRET)
    assert secret["metadata"]["annotations"]["serving.kserve.io/s3-endpoint"] == "minio.storage.svc.cluster.local:9000"
    assert secret["metadata"]["annotations"]["serving.kserve.io/s3-usehttps"] == "0"


def test_own_secret_is_listed_instead():
    """serving.s3Credentials.existingSecret (GitOps: a Secret of yours, annotated by you): the chart lists
    it and renders none."""
    objs = _render({"artifacts": EXTERNAL, "serving": {"s3Credentials": {"existingSecret": "model-store-s3"}}})
    assert [s["metadata"]["name"] for s in _serving_secrets(objs)] == [HF_SECRET]
    (sa,) = cr.find(objs, "ServiceAccount", SA)
    assert sa["secrets"] == [{"name": "model-store-s3"}, {"name": HF_SECRET}]
    with pytest.raises(kc.MissingSecret):  # KServe refuses the pods until it exists
        kc.storage_initializer_env(sa, {})


def test_no_serving_no_credentials():
    objs = _render({"serving": {"enabled": False}})
    assert _serving_secrets(objs) == [] and cr.find(objs, "ServiceAccount", SA) == []


@pytest.mark.parametrize(
    "values, key",
    [
        ({"serving": {"s3Credentials": {"existingSecret": "Bad_Name"}}}, "/serving/s3Credentials/existingSecret"),
        ({"serving": {"s3Credentials": {"verifySsl": "no"}}}, "/serving/s3Credentials/verifySsl"),
        ({"serving": {"s3Credentials": {"accessKey": "AKIA"}}}, "accessKey"),
    ],
    ids=["secret name", "verify not boolean", "no secret values"],
)
def test_schema_rejects_bad_credentials_values(values, key):
    h = cr.helm()
    with h.Chart.load(cr.CHART) as chart, pytest.raises(h.HelmValuesError) as exc:
        chart.validate_schema(values)
    assert key in str(exc.value)
