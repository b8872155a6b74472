"""The chart's predictor runtime switch: our `twin serve` predictor or KServe's Hugging Face runtime."""

from __future__ import annotations

import chart_render as cr  # noqa: E402
import helm_python  # noqa: F401 - a dev dependency: missing is a failure, not a skip
import kubernetes_validate  # noqa: F401 - a dev dependency: missing is a failure, not a skip
import pytest

HF = {
    "serving": {
        "predictor": {
            "runtime": "huggingface",
            "huggingface": {"modelId": "meta-llama/Llama-3.1-8B-Instruct", "extraArgs": ["--max_model_len=8192"]},
            "gpu": {"enabled": True},
        }
    }
}


def _isvc(values: dict | None) -> dict:
    objs = cr.objects(cr.render(values, api_versions=(cr.KSERVE_API,)))
    assert [e for o in objs for e in cr.validate_object(o)] == []  # KServe 0.21 schema included
    (isvc,) = cr.find(objs, "InferenceService")
    return isvc


def test_default_runtime_is_the_twin_predictor() -> None:
    predictor = _isvc(None)["spec"]["predictor"]
    assert "model" not in predictor
    assert predictor["containers"][0]["args"][:2] == ["--component", "predictor"]


def test_huggingface_runtime_predictor_and_openai_transformer() -> None:
    spec = _isvc(HF)["spec"]
    predictor = spec["predictor"]
    assert "containers" not in predictor
    model = predictor["model"]
    assert model["modelFormat"] == {"name": "huggingface"}
    # a Hub id becomes the model's storageUri: KServe needs a stable predictor with a model for canaries
    assert model["storageUri"] == "hf://meta-llama/Llama-3.1-8B-Instruct"
    assert model["args"] == ["--model_name=llm-twin", "--backend=vllm", "--max_model_len=8192"]
    assert model["resources"]["limits"]["nvidia.com/gpu"] == "1"
    assert predictor["nodeSelector"] == {"llm-twin/pool": "gpu"}
    env = {e["name"]: e["value"] for e in spec["transformer"]["containers"][0]["env"]}
    assert env == {
        "TWIN_LLM_BACKEND": "openai",
        "TWIN_LLM_BASE_URL": f"http://llm-twin-predictor.{cr.NAMESPACE}.svc.cluster.local/openai/v1",
        "TWIN_LLM_API_MODEL": "llm-twin",
    }


def test_registry_weights_by_storage_uri() -> None:
    values = {"serving": {"predictor": {"runtime": "huggingface", "huggingface": {"storageUri": "s3://m/ada/v0003"}}}}
    model = _isvc(values)["spec"]["predictor"]["model"]
    assert model["storageUri"] == "s3://m/ada/v0003"
    assert not any(a.startswith("--model_id") for a in model["args"])


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"serving": {"predictor": {"runtime": "vllm"}}}, "runtime"),
        ({"serving": {"baseModel": {"storageUri": "", "version": "base"}}}, "storageUri"),
        ({"serving": {"predictor": {"huggingface": {"backend": "tgi"}}}}, "backend"),
    ],
)
def test_bad_runtime_values_are_refused(values: dict, message: str) -> None:
    with pytest.raises(Exception, match=message):
        cr.render(values, api_versions=(cr.KSERVE_API,))
