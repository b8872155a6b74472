"""KServe's admission rules for an InferenceService, transcribed from its source for the tests.

Source: github.com/kserve/kserve at aaac4e2 (2026-08-21), pkg/apis/serving/v1beta1/:
- inference_service_validation.go: ``validateInferenceService`` (name, blocked env vars, exactly one
  implementation per component, replicas, Knative autoscaler fields, ``validateCanarySpecs``) and, on
  update, ``validateDeploymentMode`` and ``validatePredictorNameChange``;
- predictor_custom.go: ``CustomPredictor.GetStorageUri`` (a custom container's model is the
  ``STORAGE_URI`` env of the container named ``kserve-container``);
- component.go: ``ComponentExtensionSpec.Validate`` -> ``validateReplicas``;
- inference_service.go: ``CanarySpec`` (Deployment ``{isvc}-{name}-predictor``).

``errors(isvc, old)`` returns the messages KServe's webhook would give (first error per rule group,
like the Go code's early returns, but all groups are checked so a test sees every problem). Two
stricter twin rules are marked: an empty STORAGE_URI counts as no model, and canaryTrafficPercent
outside Knative (KServe ignores it in Standard mode: a silent no-op canary) is an error.
"""

from __future__ import annotations

import copy
import re
from typing import Any

ISVC_NAME = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")  # IsvcNameFmt
DNS_LABEL = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")
BLOCKED_ENV = {"PYTHONPATH"}  # pkg/validation/env_policy.go DefaultBlockedEnvVars
STORAGE_URI_ENV = "STORAGE_URI"  # constants.CustomSpecStorageUriEnvVarKey
MAIN_CONTAINER = "kserve-container"  # constants.InferenceServiceContainerName
# PredictorSpec's implementations (one of): the framework fields, `model`, or custom containers.
PREDICTOR_IMPLS = ("sklearn", "xgboost", "tensorflow", "pytorch", "triton", "onnx", "huggingface", "pmml",
                   "lightgbm", "paddle", "model")  # fmt: skip
KPA_METRICS = {"concurrency", "rps"}  # constants.AutoscalerAllowedKPAMetricsList


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386, as the API server applies ``application/merge-patch+json``."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    out = copy.deepcopy(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            out.pop(key, None)
        else:
            out[key] = merge_patch(out.get(key), value)
    return out


def storage_uri(predictor: dict[str, Any]) -> str | None:
    """``Predictor.GetImplementation().GetStorageUri()``: model.storageUri, a framework's storageUri,
    or the kserve-container's STORAGE_URI env (CustomPredictor.GetStorageUri)."""
    for impl in PREDICTOR_IMPLS:
        if predictor.get(impl) is not None:
            return predictor[impl].get("storageUri")
    for container in predictor.get("containers") or []:
        if container.get("name") == MAIN_CONTAINER:
            return next((e.get("value") for e in container.get("env") or [] if e.get("name") == STORAGE_URI_ENV), None)
    return None


def _implementations(component: dict[str, Any], predictor: bool) -> int:
    impls = sum(1 for k in PREDICTOR_IMPLS if component.get(k) is not None) if predictor else 0
    return impls + (1 if component.get("containers") else 0)


def _component_errors(name: str, comp: dict[str, Any], predictor: bool, mode: str | None) -> list[str]:
    errs = []
    if _implementations(comp, predictor) != 1:  # validateExactlyOneImplementation
        errs.append(f"{name}: exactly one implementation is required")
    low, high = comp.get("minReplicas", 1), comp.get("maxReplicas", 0)  # validateReplicas
    if low < 0 or high < 0 or (high != 0 and low > high):
        errs.append(f"{name}: replicas min {low} / max {high}")
    if mode != "Standard":  # validateAutoScalingCompExtension -> validateScalingKPACompExtension
        if comp.get("deploymentStrategy") is not None:
            errs.append(f"{name}: customizing deploymentStrategy is only supported for raw deployment mode")
        if comp.get("scaleMetric", "concurrency") not in KPA_METRICS:
            errs.append(f"{name}: [{comp['scaleMetric']}] is not a supported metric")
    for c in comp.get("containers") or []:  # validateBlockedEnvVars
        for e in c.get("env") or []:
            if e.get("name") in BLOCKED_ENV:
                errs.append(f"{name}: setting {e['name']} in container {c.get('name')!r} is not allowed")
    return errs


def _canary_errors(isvc: dict[str, Any]) -> list[str]:
    """``validateCanarySpecs`` (and the Deployment name its CanarySpec comment implies)."""
    spec = isvc["spec"]
    canaries = spec.get("canary") or []
    if not canaries:
        return []
    if (isvc["metadata"].get("annotations") or {}).get("serving.kserve.io/deploymentMode") != "Standard":
        return ["canary is only supported in Standard deployment mode"]
    stable = spec["predictor"]
    if not storage_uri(stable) and stable.get("model") is None:  # twin rule: "" counts as no model
        return ["canary requires a stable predictor with a model (multi-model serving is not supported with canary)"]
    errs, names, total = [], set(), 0
    for i, canary in enumerate(canaries):
        pred = canary.get("predictor") or {}
        name = pred.get("name") or ""
        if not name:
            errs.append(f"canary[{i}] predictor.name is required")
            continue
        if name in names:
            errs.append(f"canary predictor.name {name!r} is duplicated")
        names.add(name)
        if name == stable.get("name"):
            errs.append(f"canary predictor.name {name!r} conflicts with stable predictor name")
        percent = canary.get("trafficPercent", 0)
        if not 0 <= percent <= 100:
            errs.append(f"canary {name!r} trafficPercent must be between 0 and 100, got {percent}")
        total += percent
        errs += _component_errors(f"canary {name!r} predictor", pred, True, "Standard")
        for field in ("workerSpec", "maxReplicas", "scaleTarget", "scaleMetric", "autoScaling"):
            if pred.get(field):
                errs.append(f"canary {name!r} must not set {field}")
        if pred.get("minReplicas") is not None and pred["minReplicas"] > stable.get("minReplicas", 1):
            errs.append(f"canary {name!r} minReplicas must not exceed stable predictor minReplicas")
        deployment = f"{isvc['metadata']['name']}-{name}-predictor"
        if len(deployment) > 63 or not DNS_LABEL.match(deployment):
            errs.append(f"canary {name!r}: Deployment/Service name {deployment!r} is not a DNS-1035 label")
    if total > 100:
        errs.append(f"sum of canary trafficPercent values ({total}) must be <= 100")
    return errs


def errors(isvc: dict[str, Any], old: dict[str, Any] | None = None) -> list[str]:
    """What KServe's validating webhook refuses in ``isvc`` (created, or updated from ``old``)."""
    meta, spec = isvc["metadata"], isvc["spec"]
    mode = (meta.get("annotations") or {}).get("serving.kserve.io/deploymentMode")
    errs = [] if ISVC_NAME.match(meta["name"]) else [f"invalid InferenceService name {meta['name']!r}"]
    errs += _component_errors("predictor", spec["predictor"], True, mode)
    if spec.get("transformer") is not None:
        errs += _component_errors("transformer", spec["transformer"], False, mode)
    if mode != "Knative" and spec["predictor"].get("canaryTrafficPercent") is not None:  # twin rule
        errs.append("canaryTrafficPercent splits traffic only in Knative mode (Standard ignores it)")
    errs += _canary_errors(isvc)
    if old is not None:
        old_mode = (old["metadata"].get("annotations") or {}).get("serving.kserve.io/deploymentMode")
        if mode != old_mode:  # validateDeploymentMode (status.deploymentMode = the old annotation)
            errs.append(f"update rejected: deploymentMode cannot be changed from {old_mode!r} to {mode!r}")
        old_pred, new_pred = old["spec"]["predictor"], spec["predictor"]
        renamed = old_pred.get("name") != new_pred.get("name")
        if renamed and storage_uri(old_pred) == storage_uri(new_pred):  # validatePredictorNameChange
            errs.append("predictor.name change requires a model change (e.g. storageUri)")
    return errs


def apply(isvc: dict[str, Any], patch: dict[str, Any]) -> tuple[dict[str, Any], list[str]]:
    """The object after a merge patch, and KServe's verdict on that update."""
    new = merge_patch(isvc, patch)
    return new, errors(new, isvc)
