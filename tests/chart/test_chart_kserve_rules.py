"""Every InferenceService the chart renders passes KServe's own admission rules (kserve_rules.py), and
its first canary is accepted: in Standard and Knative modes, for both predictor runtimes, one
InferenceService per author."""

from __future__ import annotations

import copy

import chart_render as cr  # noqa: E402
import helm_python  # noqa: F401 - a dev dependency: missing is a failure, not a skip
import kserve_rules  # noqa: E402
import kubernetes_validate  # noqa: F401 - a dev dependency: missing is a failure, not a skip
import pytest

AUTHORS = [
    {"slug": "ada-quillfeather", "storageUri": "s3://llm-twin/models/ada-quillfeather/v0003/merged",
     "modelVersion": "ada-quillfeather/v0003"},
    {"slug": "oskar-brennmoor"},
]  # fmt: skip
HF = {"runtime": "huggingface", "huggingface": {"modelId": "HuggingFaceTB/SmolLM2-135M-Instruct"}}
CASES = {
    "defaults": {},
    "standard-authors": {"serving": {"authors": AUTHORS}},
    "knative-authors": {"serving": {"deploymentMode": "Knative", "authors": AUTHORS}},
    "knative-canary-value": {"serving": {"deploymentMode": "Knative", "canaryTrafficPercent": 10}},
    "hf-standard": {"serving": {"authors": AUTHORS, "predictor": HF}},
    "hf-knative": {"serving": {"deploymentMode": "Knative", "predictor": HF}},
    "gpu-ci": cr.ci_values("gpu"),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_rendered_inference_services_pass_kserve_rules_and_take_a_canary(case: str) -> None:
    from twin_core.deploy import kserve

    objs = cr.objects(cr.render(CASES[case], api_versions=(cr.KSERVE_API,)))
    isvcs = cr.find(objs, "InferenceService")
    assert isvcs
    for isvc in isvcs:
        assert kserve_rules.errors(isvc) == [] and cr.validate_object(isvc) == []
        assert kserve_rules.storage_uri(isvc["spec"]["predictor"])  # a stable predictor with a model
        patch = kserve.canary_patch(isvc, "ada-quillfeather/v0004", "s3://llm-twin/models/x/v0004/merged", 5)
        after, errors = kserve_rules.apply(isvc, patch)
        assert errors == [] and cr.validate_object(after) == []


def test_one_inference_service_per_author_each_on_its_own_model() -> None:
    isvcs = cr.find(cr.objects(cr.render(CASES["standard-authors"], api_versions=(cr.KSERVE_API,))), "InferenceService")
    got = {
        i["metadata"]["name"]: (
            kserve_rules.storage_uri(i["spec"]["predictor"]),
            i["metadata"]["annotations"].get("llm-twin/production-ref"),
            i["metadata"]["labels"]["llm-twin/author"],
        )
        for i in isvcs
    }
    assert got == {
        "llm-twin-ada-quillfeather": (AUTHORS[0]["storageUri"], "ada-quillfeather/v0003", "ada-quillfeather"),
        "llm-twin-oskar-brennmoor": ("hf://HuggingFaceTB/SmolLM2-135M-Instruct", None, "oskar-brennmoor"),
    }


def test_rules_refuse_what_kserve_refuses() -> None:
    """The transcribed rules bite: the pre-fix chart (no model) and the usual canary mistakes."""
    (isvc,) = cr.find(cr.objects(cr.render(None, api_versions=(cr.KSERVE_API,))), "InferenceService")
    no_model = copy.deepcopy(isvc)
    no_model["spec"]["predictor"]["containers"][0].pop("env")
    canary = {"trafficPercent": 60, "predictor": {**no_model["spec"]["predictor"], "name": "v2"}}
    assert kserve_rules.errors(kserve_rules.merge_patch(no_model, {"spec": {"canary": [canary]}})) == [
        "canary requires a stable predictor with a model (multi-model serving is not supported with canary)"
    ]
    canary["predictor"] = {**isvc["spec"]["predictor"], "name": "v2"}
    two = {"spec": {"canary": [canary, canary]}}
    assert kserve_rules.errors(kserve_rules.merge_patch(isvc, two)) == [
        "canary 'v2' must not set maxReplicas",
        "canary predictor.name 'v2' is duplicated",
        "canary 'v2' must not set maxReplicas",
        "sum of canary trafficPercent values (120) must be <= 100",
    ]
    knative = kserve_rules.merge_patch(
        isvc, {"metadata": {"annotations": {"serving.kserve.io/deploymentMode": "Knative"}}}
    )
    assert kserve_rules.errors(kserve_rules.merge_patch(knative, {"spec": {"canary": [canary]}}), isvc) == [
        "canary is only supported in Standard deployment mode",
        "update rejected: deploymentMode cannot be changed from 'Standard' to 'Knative'",
    ]
