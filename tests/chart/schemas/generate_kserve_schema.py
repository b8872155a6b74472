"""Regenerate inferenceservice-v1beta1.json, the KServe InferenceService schema used by the chart tests.

Source: the KServe Python SDK (``pip install kserve==0.21.*``), whose ``kserve.models`` classes are
generated from the OpenAPI definitions of KServe's Go API types (pkg/apis/serving/v1beta1) — the same
types the InferenceService CRD (config/crd/full/serving.kserve.io_inferenceservices.yaml) is generated
from. The full CRD (about 1 MB) is not vendored; this schema keeps every field name and scalar type of
the KServe types, forbids unknown fields, and refers Kubernetes core types (Container, Toleration, ...)
to the Kubernetes schemas of kubernetes-validate. Run from the repository root with the twin env:

    .venv/bin/python tests/chart/schemas/generate_kserve_schema.py
"""

from __future__ import annotations

import json
import re
from importlib.metadata import version
from pathlib import Path

from kserve import models

K8S_DEFS = "https://kubernetes.io/api/_definitions.json#/$defs/"
# Kubernetes client model name -> definition in the Kubernetes OpenAPI document.
K8S_GROUPS = {
    "K8sIoApiAppsV1": "io.k8s.api.apps.v1.",
    "K8sIoApiAutoscalingV2": "io.k8s.api.autoscaling.v2.",
    "V1": "io.k8s.api.core.v1.",
}
SCALARS = {
    "str": {"type": "string"},
    "int": {"type": "integer"},
    "bool": {"type": "boolean"},
    "float": {"type": "number"},
    "object": {},
    "ResourceQuantity": {"type": ["string", "integer", "number"]},
    "datetime": {"type": "string"},
}
OUT = Path(__file__).with_name("inferenceservice-v1beta1.json")


def type_schema(openapi_type: str, defs: dict) -> dict:
    if openapi_type in SCALARS:
        return SCALARS[openapi_type]
    if m := re.fullmatch(r"list\[(.+)\]", openapi_type):
        return {"type": "array", "items": type_schema(m.group(1), defs)}
    if m := re.fullmatch(r"dict\(str, (.+)\)", openapi_type):
        return {"type": "object", "additionalProperties": type_schema(m.group(1), defs)}
    if openapi_type.startswith("V1beta1") or openapi_type.startswith("V1alpha1"):
        model_schema(openapi_type, defs)
        return {"$ref": f"#/$defs/{openapi_type}"}
    for prefix, group in K8S_GROUPS.items():
        if openapi_type.startswith(prefix):
            return {"$ref": K8S_DEFS + group + openapi_type[len(prefix) :]}
    raise ValueError(f"unmapped type {openapi_type}")


def model_schema(name: str, defs: dict) -> None:
    if name in defs:
        return
    defs[name] = {}  # placeholder against recursion
    cls = getattr(models, name, None)
    if cls is None:  # referenced by the SDK but not generated in it (e.g. quantities): leave open
        defs[name] = {"description": f"{name}: not modelled by the KServe SDK"}
        return
    props = {
        cls.attribute_map[attr]: type_schema(openapi_type, defs) for attr, openapi_type in cls.openapi_types.items()
    }
    defs[name] = {"type": "object", "properties": props, "additionalProperties": False}


def main() -> None:
    defs: dict = {}
    model_schema("V1beta1InferenceServiceSpec", defs)
    defs["V1beta1InferenceServiceSpec"]["required"] = ["predictor"]
    schema = {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": "https://llm-twin.local/schemas/inferenceservice-v1beta1.json",
        "title": f"InferenceService serving.kserve.io/v1beta1 (generated from kserve {version('kserve')})",
        "type": "object",
        "properties": {
            "apiVersion": {"const": "serving.kserve.io/v1beta1"},
            "kind": {"const": "InferenceService"},
            "metadata": {"$ref": K8S_DEFS + "io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta"},
            "spec": {"$ref": "#/$defs/V1beta1InferenceServiceSpec"},
        },
        "required": ["apiVersion", "kind", "metadata", "spec"],
        "additionalProperties": False,
        "$defs": dict(sorted(defs.items())),
    }
    OUT.write_text(json.dumps(schema, indent=1, sort_keys=False) + "\n")
    print(f"wrote {OUT} ({len(defs)} KServe types)")


if __name__ == "__main__":
    main()
