"""Regenerate podmonitor-v1.json and servicemonitor-v1.json, the Prometheus Operator schemas used by the
chart tests.

Source: the CRDs of the Prometheus Operator (github.com/prometheus-operator/prometheus-operator,
example/prometheus-operator-crd/monitoring.coreos.com_{podmonitors,servicemonitors}.yaml; generated
here from v0.93.0). Their openAPIV3Schema is kept field for field (types, enums, patterns, required
fields) without the descriptions; unknown fields are rejected, as the API server's structural schema
prunes them, and metadata refers to kubernetes-validate's ObjectMeta. Run from the repository root:

    .venv/bin/python tests/chart/schemas/generate_monitor_schemas.py <folder holding the two CRD files>
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import yaml

K8S_OBJECT_META = "https://kubernetes.io/api/_definitions.json#/$defs/io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta"
KEPT = ("enum", "pattern", "minimum", "maximum", "minLength", "maxLength", "minItems", "maxItems", "required")
HERE = Path(__file__).parent


def convert(node: dict) -> dict:
    """One OpenAPI v3 (structural) schema node as JSON Schema."""
    out: dict = {}
    if node.get("x-kubernetes-int-or-string"):
        out["type"] = ["integer", "string"]
    elif "type" in node:
        out["type"] = node["type"]
    for key in KEPT:
        if key in node:
            out[key] = node[key]
    if "properties" in node:
        out["properties"] = {name: convert(sub) for name, sub in node["properties"].items()}
        if not node.get("x-kubernetes-preserve-unknown-fields"):
            out["additionalProperties"] = False
    elif isinstance(node.get("additionalProperties"), dict):
        out["additionalProperties"] = convert(node["additionalProperties"])
    if "items" in node:
        out["items"] = convert(node["items"])
    return out


def schema_of(crd_file: Path) -> tuple[str, dict]:
    crd = yaml.safe_load(crd_file.read_text())
    kind = crd["spec"]["names"]["kind"]
    version = next(v for v in crd["spec"]["versions"] if v["name"] == "v1")
    source = version["schema"]["openAPIV3Schema"]
    operator = crd["metadata"].get("annotations", {}).get("operator.prometheus.io/version", "?")
    name = f"{kind.lower()}-v1.json"
    return name, {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": f"https://llm-twin.local/schemas/{name}",
        "title": f"{kind} monitoring.coreos.com/v1 (generated from the Prometheus Operator {operator} CRD)",
        "type": "object",
        "properties": {
            "apiVersion": {"const": "monitoring.coreos.com/v1"},
            "kind": {"const": kind},
            "metadata": {"$ref": K8S_OBJECT_META},
            "spec": convert(source["properties"]["spec"]),
        },
        "required": ["apiVersion", "kind", "metadata", "spec"],
        "additionalProperties": False,
    }


def main() -> None:
    folder = Path(sys.argv[1])
    for plural in ("podmonitors", "servicemonitors"):
        name, schema = schema_of(folder / f"monitoring.coreos.com_{plural}.yaml")
        (HERE / name).write_text(json.dumps(schema, indent=1) + "\n")
        print(f"wrote {HERE / name}")


if __name__ == "__main__":
    main()
