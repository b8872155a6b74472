"""hf:// models on the InferenceServices: KServe's storage initializer gets the HF_TOKEN of the twin Secret.

KServe gives the init container HF_TOKEN only from a Secret the predictor's service account lists whose
data has HF_TOKEN and no S3 key (mountSecretCredential takes a Secret with AWS_SECRET_ACCESS_KEY as S3's);
the predictor's own env (envFrom the twin Secret) never reaches it. Before, the account listed the S3
Secret alone and a gated hf:// model could not be downloaded. What the initializer receives is computed
from the rendered objects by KServe's rules, transcribed in kserve_credentials.py.
"""

from __future__ import annotations

import base64

import chart_render as cr  # noqa: E402  (tests/chart/conftest.py puts it on sys.path)
import helm_python  # noqa: F401 - a dev dependency: missing is a failure, not a skip
import kserve_credentials as kc  # noqa: E402
import kubernetes_validate  # noqa: F401 - a dev dependency: missing is a failure, not a skip
import pytest

SA = "llm-twin-serving"
S3_SECRET = "llm-twin-serving-s3"
HF_SECRET = "llm-twin-serving-hf"
TWIN_SECRET = "llm-twin-secrets"
LOOKUP = 'lookup "v1" "Secret" .Release.Namespace .Values.secrets.existingSecret'
EXTERNAL = {"devObjectStore": {"enabled": False}}
TOKEN = base64.b64encode(b"hf_gated_token").decode()
S3_KEYS = {"AWS_ACCESS_KEY_ID": "QUtJQQ==", "AWS_SECRET_ACCESS_KEY": "c2VjcmV0"}
GATED = {"baseModel": {"storageUri": "hf://meta-llama/Llama-3.1-8B-Instruct", "version": "base"}}


def _render(values: dict | None, chart_dir=cr.CHART) -> list[dict]:
    objs = cr.objects(cr.render(values, api_versions=(cr.KSERVE_API,), chart_dir=chart_dir))
    assert [e for o in objs for e in cr.validate_object(o)] == []
    return objs


def _with_twin_secret(tmp_path, data: dict[str, str]):
    """A copy of the chart whose lookups of the twin Secret (the S3 and the HF copies) find `data`."""
    answers = {TWIN_SECRET: {"data": data}}
    for template in ("serving-s3-secret.yaml", "serving-hf-secret.yaml"):
        chart = cr.answering_lookup(tmp_path, template, LOOKUP, answers)
    return chart


def _account(objs: list[dict]) -> dict:
    serving = [spec for owner, spec in cr.pod_specs(objs) if owner.startswith("InferenceService/")]
    assert {spec["serviceAccountName"] for spec in serving} == {SA}  # predictor and transformer of every one
    (sa,) = cr.find(objs, "ServiceAccount", SA)
    return sa


def _initializer_env(objs: list[dict], extra_secrets: dict | None = None) -> dict:
    secrets = {s["metadata"]["name"]: s for s in cr.find(objs, "Secret")} | (extra_secrets or {})
    return kc.as_dict(kc.storage_initializer_env(_account(objs), secrets))


@pytest.mark.parametrize("runtime", ["twin", "huggingface"])
def test_gated_model_gets_the_twin_secrets_hf_token(tmp_path, runtime):
    """At install/upgrade the chart copies HF_TOKEN (alone) into a Secret the serving account lists next
    to the S3 one: the initializer gets HF_TOKEN by reference, and the S3 keys as before."""
    twin_data = {**S3_KEYS, "HF_TOKEN": TOKEN, "TWIN_SERVE_API_KEYS": "e30="}
    chart = _with_twin_secret(tmp_path, twin_data)
    objs = _render({"artifacts": EXTERNAL, "serving": {**GATED, "predictor": {"runtime": runtime}}}, chart)
    assert _account(objs)["secrets"] == [{"name": S3_SECRET}, {"name": HF_SECRET}]
    (secret,) = cr.find(objs, "Secret", HF_SECRET)
    assert secret["metadata"]["namespace"] == cr.NAMESPACE
    assert secret["metadata"]["labels"]["app.kubernetes.io/component"] == "serving"
    assert secret["data"] == {"HF_TOKEN": TOKEN} and "stringData" not in secret
    env = _initializer_env(objs)
    assert env["HF_TOKEN"] == ("secretKeyRef", HF_SECRET, "HF_TOKEN")
    assert env["AWS_ACCESS_KEY_ID"] == ("secretKeyRef", S3_SECRET, "AWS_ACCESS_KEY_ID")
    assert env["AWS_SECRET_ACCESS_KEY"] == ("secretKeyRef", S3_SECRET, "AWS_SECRET_ACCESS_KEY")
    # why a Secret of its own: the twin Secret listed as is would be taken as S3's, its HF_TOKEN ignored
    twin = {"metadata": {"name": TWIN_SECRET}, "data": twin_data}
    as_is = kc.storage_initializer_env({"secrets": [{"name": TWIN_SECRET}]}, {TWIN_SECRET: twin})
    assert "HF_TOKEN" not in kc.as_dict(as_is)


def test_no_token_leaves_the_secret_empty_and_the_pod_admitted(tmp_path):
    """No HF_TOKEN in the twin Secret (public models), or no cluster to read (helm template): the Secret
    still exists, so KServe admits the pod (a listed Secret that is missing fails it), and it holds no
    data, so KServe skips it and the download is anonymous."""
    offline = _render({"serving": GATED})
    read = _render({"serving": GATED}, _with_twin_secret(tmp_path, S3_KEYS))
    for objs in (offline, read):
        assert {"name": HF_SECRET} in _account(objs)["secrets"]
        (secret,) = cr.find(objs, "Secret", HF_SECRET)
        assert "data" not in secret and "stringData" not in secret
        env = _initializer_env(objs)  # raises kc.MissingSecret if a listed Secret is not rendered
        assert "HF_TOKEN" not in env
        assert env["AWS_ENDPOINT_URL"]  # the S3 Secret still works next to it


def test_the_hf_secret_is_listed_only_when_a_served_model_is_hf():
    """The token is copied only where an hf:// model is served: the base model, an author's weights or
    the Hugging Face runtime's model id (`twin deploy` rolls out s3:// registry versions)."""
    s3_base = {"baseModel": {"storageUri": "s3://llm-twin/models/base", "version": "base"}}
    hub_author = {**s3_base, "authors": [{"slug": "ada", "storageUri": "hf://org/ada-twin"}]}
    hf_runtime = {**s3_base, "predictor": {"runtime": "huggingface", "huggingface": {"modelId": "org/model"}}}
    cases = {"default": (None, True), "author": (hub_author, True), "runtime": (hf_runtime, True)}
    cases["s3 only"] = (s3_base, False)
    for name, (serving, listed) in cases.items():
        objs = _render(None if serving is None else {"serving": serving})
        names = [s["name"] for s in _account(objs)["secrets"]]
        assert (HF_SECRET in names) is listed, name
        assert bool(cr.find(objs, "Secret", HF_SECRET)) is listed, name
        assert names[0] == S3_SECRET, name  # the registry's s3:// versions always need it
    off = _render({"serving": {"enabled": False}})
    assert cr.find(off, "Secret", HF_SECRET) == [] and cr.find(off, "ServiceAccount", SA) == []


def test_own_hf_secret_is_listed_instead():
    """serving.hfCredentials.existingSecret (GitOps, or a secret manager that rotates it): the chart lists
    it and renders none; KServe references it directly."""
    objs = _render({"serving": {**GATED, "hfCredentials": {"existingSecret": "hub-token"}}})
    assert cr.find(objs, "Secret", HF_SECRET) == []
    assert _account(objs)["secrets"] == [{"name": S3_SECRET}, {"name": "hub-token"}]
    with pytest.raises(kc.MissingSecret):  # KServe refuses the pods until it exists
        _initializer_env(objs)
    own = {"metadata": {"name": "hub-token"}, "data": {"HF_TOKEN": TOKEN}}
    assert _initializer_env(objs, {"hub-token": own})["HF_TOKEN"] == ("secretKeyRef", "hub-token", "HF_TOKEN")
    h = cr.helm()
    with h.Chart.load(cr.CHART) as chart, pytest.raises(h.HelmValuesError) as exc:
        chart.validate_schema({"serving": {"hfCredentials": {"existingSecret": "Bad_Name"}}})
    assert "/serving/hfCredentials/existingSecret" in str(exc.value)
