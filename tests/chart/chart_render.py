"""Render and validate charts/llm-twin offline with the real Helm engine (helm-python-sdk, Helm v4).

No cluster, no helm binary and no chart repository are involved: the dependency charts (Airflow,
Qdrant) are declared in Chart.yaml but not vendored, and Helm renders the parent chart's own templates
without them. `with_stub_dependencies` builds a copy of the chart with empty stand-ins for them, so the
`condition:` wiring and a strict lint can be checked too.
"""

from __future__ import annotations

import json
import shutil
from functools import cache
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[2]
CHART = REPO / "charts" / "llm-twin"
SCHEMAS = Path(__file__).resolve().parent / "schemas"
RELEASE = "llm-twin"
NAMESPACE = "llm-twin"
# Kubernetes versions the rendered objects are validated against: the oldest the chart supports
# (Chart.yaml kubeVersion) and the newest kubernetes-validate knows.
KUBE_VERSIONS = ("1.29.0", "1.37.0")

KSERVE_API = "serving.kserve.io/v1beta1/InferenceService"
PROMETHEUS_API = "monitoring.coreos.com/v1/PrometheusRule"
POD_MONITOR_API = "monitoring.coreos.com/v1/PodMonitor"
SERVICE_MONITOR_API = "monitoring.coreos.com/v1/ServiceMonitor"
# What a cluster with the Prometheus Operator serves (it installs the three CRDs together).
PROMETHEUS_APIS = (PROMETHEUS_API, POD_MONITOR_API, SERVICE_MONITOR_API)


def helm():
    import helm_python  # imported lazily: rendering only when a test renders

    return helm_python


def render(
    values: dict[str, Any] | None = None,
    *,
    api_versions: tuple[str, ...] = (),
    namespace: str = NAMESPACE,
    chart_dir: Path = CHART,
    kube_version: str | None = None,
    release: str = RELEASE,
    upgrade: bool = False,
) -> dict[str, str]:
    """Template path -> rendered text, like `helm template --api-versions ... --namespace ...`
    (`upgrade`: .Release.IsUpgrade instead of IsInstall).

    The SDK's Chart.render does not expose --api-versions/--kube-version, but the library's render
    options do (`api_versions`, `kube_version`), so the call goes one level down.
    """
    h = helm()
    from helm_python import _native

    opts: dict[str, Any] = {"name": release, "namespace": namespace}
    opts["is_upgrade" if upgrade else "is_install"] = True
    if api_versions:
        opts["api_versions"] = list(api_versions)
    if kube_version:
        opts["kube_version"] = kube_version
    with h.Chart.load(chart_dir) as chart:
        raw = _native.call_string(
            "helm_render",
            chart._raw(),
            None if values is None else json.dumps(values),
            json.dumps(opts),
        )
    return json.loads(raw)


def objects(rendered: dict[str, str]) -> list[dict[str, Any]]:
    """Every Kubernetes object of a rendering (NOTES.txt excluded)."""
    docs: list[dict[str, Any]] = []
    for path, text in sorted(rendered.items()):
        if path.endswith("NOTES.txt"):
            continue
        for doc in yaml.safe_load_all(text):
            if doc:
                docs.append(doc)
    return docs


def notes(rendered: dict[str, str]) -> str:
    return next((text for path, text in rendered.items() if path.endswith("NOTES.txt")), "")


def find(objs: list[dict], kind: str, name: str | None = None) -> list[dict]:
    return [o for o in objs if o["kind"] == kind and (name is None or o["metadata"]["name"] == name)]


def chart_values() -> dict[str, Any]:
    return yaml.safe_load((CHART / "values.yaml").read_text())


def ci_values(name: str) -> dict[str, Any]:
    return yaml.safe_load((CHART / "ci" / f"{name}-values.yaml").read_text())


def answering_lookup(dest: Path, template: str, call: str, answers: dict[str, Any]) -> Path:
    """A copy of the chart (at `dest`, made once, then only `template` is rewritten) in which the `lookup`
    expression `call` of `template` is answered from `answers`, keyed by the object's name.

    Offline renders see no cluster (`lookup` returns nothing); at `helm install` / `upgrade` it returns the
    live object. `call` must end with the name argument, as `lookup "v1" "Secret" $ns $name` does: it
    becomes `get (fromJson <answers>) $name` (an empty string, i.e. "not found", for a name not answered).
    """
    target = dest / CHART.name
    if not target.exists():
        shutil.copytree(CHART, target)
    original = (CHART / "templates" / template).read_text()
    assert call in original, f"{template} has no {call!r}"
    name_arg = call.rsplit(" ", 1)[1]
    answer = json.dumps(answers)
    assert "`" not in answer
    (target / "templates" / template).write_text(original.replace(call, f"get (fromJson `{answer}`) {name_arg}"))
    return target


# What the Airflow stand-in renders besides its marker: its values as it receives them (after Helm's
# merge of this chart's `airflow:` values and the -f files) and airflow.cfg as the Airflow chart renders
# it (chart/templates/configmaps/configmap.yaml: every `config` value through `tpl`, in its own context).
_AIRFLOW_STUB = """apiVersion: v1
kind: ConfigMap
metadata:
  name: airflow-stand-in-values
  namespace: {{ .Release.Namespace }}
data:
  values.json: {{ toJson .Values | quote }}
  airflow.cfg: |-
    {{- $Global := . }}
    {{- range $section, $settings := .Values.config }}
    [{{ $section }}]
    {{- range $key, $val := $settings }}
    {{ $key }} = {{ tpl ($val | toString) $Global }}
    {{- end }}
    {{ end }}
"""


def with_stub_dependencies(dest: Path) -> Path:
    """Copy the chart to `dest` with minimal stand-ins for its dependencies under charts/.

    Each stand-in has the declared name and version and renders one marker ConfigMap, so a test can
    see whether Helm enabled it through its `condition:`. The Airflow stand-in also renders the
    ConfigMap airflow-stand-in-values: the values the Airflow chart receives and its airflow.cfg.
    """
    target = dest / CHART.name
    shutil.copytree(CHART, target)
    meta = yaml.safe_load((CHART / "Chart.yaml").read_text())
    for dep in meta["dependencies"]:
        sub = target / "charts" / dep["name"]
        (sub / "templates").mkdir(parents=True)
        (sub / "Chart.yaml").write_text(
            yaml.safe_dump(
                {
                    "apiVersion": "v2",
                    "name": dep["name"],
                    "version": dep["version"],
                    "description": "offline stand-in for tests",
                    "icon": "https://example.invalid/icon.png",
                }
            )
        )
        (sub / "values.yaml").write_text("{}\n")
        (sub / "templates" / "marker.yaml").write_text(
            "apiVersion: v1\nkind: ConfigMap\nmetadata:\n"
            f"  name: stub-{dep['name']}\n  namespace: {{{{ .Release.Namespace }}}}\n"
            "data: {}\n"
        )
        if dep["name"] == "airflow":
            (sub / "templates" / "values-and-config.yaml").write_text(_AIRFLOW_STUB)
    return target


def stub_airflow(objs: list[dict]) -> tuple[dict[str, Any], str]:
    """(values, airflow.cfg) the Airflow stand-in of `with_stub_dependencies` rendered."""
    (cm,) = find(objs, "ConfigMap", "airflow-stand-in-values")
    return json.loads(cm["data"]["values.json"]), cm["data"]["airflow.cfg"]


def create_merge_patch(old: Any, new: Any) -> Any:
    """The JSON merge patch (RFC 7386) from `old` to `new`: what Helm 3 sends when it upgrades a custom
    resource (pkg/kube/client.go createPatch: jsonpatch.CreateMergePatch(previous manifest, new manifest)
    for unstructured objects). Lists are replaced whole."""
    if not (isinstance(old, dict) and isinstance(new, dict)):
        return new
    patch: dict[str, Any] = {key: None for key in old.keys() - new.keys()}
    for key, value in new.items():
        if key not in old:
            patch[key] = value
        elif old[key] != value:
            patch[key] = create_merge_patch(old[key], value)
    return patch


# --------------------------------------------------------------------------- schema validation


# The custom resources the chart renders, and their vendored schemas (tests/chart/schemas/).
CRD_SCHEMAS = {
    ("serving.kserve.io/v1beta1", "InferenceService"): "inferenceservice-v1beta1.json",
    ("monitoring.coreos.com/v1", "PrometheusRule"): "prometheusrule-v1.json",
    ("monitoring.coreos.com/v1", "PodMonitor"): "podmonitor-v1.json",
    ("monitoring.coreos.com/v1", "ServiceMonitor"): "servicemonitor-v1.json",
}


@cache
def _crd_validator(schema_file: str):
    """A validator for a vendored CRD schema whose Kubernetes types refer to kubernetes-validate's."""
    import importlib.resources

    import jsonschema
    from referencing import Registry, Resource

    defs_file = (
        importlib.resources.files("kubernetes_validate")
        / "kubernetes-json-schema"
        / f"v{KUBE_VERSIONS[-1]}-local-strict"
        / "_definitions.json"
    )
    definitions = Resource.from_contents(json.loads(defs_file.read_text()))
    schema = json.loads((SCHEMAS / schema_file).read_text())
    registry = Registry().with_resources(
        [("https://kubernetes.io/api/_definitions.json", definitions), (schema["$id"], Resource.from_contents(schema))]
    )
    return jsonschema.Draft202012Validator(schema, registry=registry)


def validate_object(obj: dict[str, Any]) -> list[str]:
    """Validation errors of one rendered object: Kubernetes schemas (strict) or a vendored CRD schema."""
    import kubernetes_validate

    key = (obj.get("apiVersion"), obj.get("kind"))
    name = f"{obj.get('kind')}/{obj.get('metadata', {}).get('name')}"
    if key in CRD_SCHEMAS:
        validator = _crd_validator(CRD_SCHEMAS[key])
        return [f"{name}: {'/'.join(map(str, e.absolute_path))}: {e.message}" for e in validator.iter_errors(obj)]
    errors = []
    for version in KUBE_VERSIONS:
        try:
            kubernetes_validate.validate(obj, version, strict=True)
        except kubernetes_validate.SchemaNotFoundError:
            errors.append(f"{name}: no schema for {key} in Kubernetes {version}")
        except kubernetes_validate.ValidationError as exc:
            path = "/".join(map(str, exc.absolute_path))
            errors.append(f"{name} (k8s {version}): {path}: {exc.message}")
    return errors


def pod_specs(objs: list[dict]) -> list[tuple[str, dict]]:
    """(owner, pod spec) for every pod this rendering would create, KServe components included."""
    specs = []
    for o in objs:
        name = f"{o['kind']}/{o['metadata']['name']}"
        if o["kind"] in ("Deployment", "StatefulSet", "DaemonSet", "Job"):
            specs.append((name, o["spec"]["template"]["spec"]))
        elif o["kind"] == "InferenceService":
            for component in ("predictor", "transformer", "explainer"):
                if component in o["spec"]:
                    specs.append((f"{name}/{component}", o["spec"][component]))
    return specs
