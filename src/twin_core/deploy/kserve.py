"""The twin's KServe InferenceService: canary, promote and rollback as JSON merge patches.

KServe 0.21 has two rollout mechanisms, chosen by the ``serving.kserve.io/deploymentMode`` annotation:

- **Knative** (called Serverless before 0.15): the predictor keeps one spec; changing it creates a new
  Knative revision and ``spec.predictor.canaryTrafficPercent`` sends that share of the traffic to it,
  the rest to the last revision rolled out at 100 %. Promote = remove ``canaryTrafficPercent`` (the new
  revision takes 100 %); rollback = ``canaryTrafficPercent: 0`` (traffic pinned to the previous revision).
- **Standard** (raw Deployments; RawDeployment before): ``spec.canary`` is a list of named canary
  predictors, each with a ``trafficPercent`` and its own Deployment ``{isvc}-{name}-predictor``.
  Promote = the stable predictor takes the canary's spec and name, the canary entry goes (no restart);
  rollback = the canary entry goes.

The model is chosen by the predictor container's environment: ``STORAGE_URI`` (KServe's storage
initializer downloads the registry's merged weights to /mnt/models for a custom container),
``TWIN_LLM_MODEL_ID=/mnt/models`` and ``TWIN_LLM_MODEL_VERSION=<ref>`` (what every answer reports).
A JSON merge patch replaces lists whole, so the patch carries the full container list read by a GET.
"""

from __future__ import annotations

import copy
import logging
from typing import Any

from twin_core.errors import BackendUnavailable, InputError
from twin_core.settings import Settings

log = logging.getLogger(__name__)

GROUP, VERSION, PLURAL = "serving.kserve.io", "v1beta1", "inferenceservices"
MODE_ANNOTATION = "serving.kserve.io/deploymentMode"
CANARY_ANNOTATION = "llm-twin/canary-ref"
PRODUCTION_ANNOTATION = "llm-twin/production-ref"
CONTAINER = "kserve-container"
MODEL_DIR = "/mnt/models"
KNATIVE_MODES = {"knative", "serverless"}
STANDARD_MODES = {"standard", "rawdeployment"}
# Autoscaling fields a Standard-mode canary predictor may not carry (its replicas follow trafficPercent).
_CANARY_DROP = ("maxReplicas", "scaleMetric", "scaleMetricType", "scaleTarget", "autoScaling", "canaryTrafficPercent")


def deployment_mode(isvc: dict[str, Any]) -> str:
    """ "knative" or "standard" (KServe's default mode, Knative, when the annotation is absent)."""
    mode = ((isvc.get("metadata") or {}).get("annotations") or {}).get(MODE_ANNOTATION, "Knative")
    low = mode.lower()
    if low in KNATIVE_MODES:
        return "knative"
    if low in STANDARD_MODES:
        return "standard"
    raise InputError(f"InferenceService deployment mode {mode!r} has no canary rollout (Knative or Standard)")


def model_env(ref: str, storage_uri: str) -> dict[str, str]:
    return {"STORAGE_URI": storage_uri, "TWIN_LLM_MODEL_ID": MODEL_DIR, "TWIN_LLM_MODEL_VERSION": ref}


def _with_env(containers: list[dict[str, Any]], env: dict[str, str]) -> list[dict[str, Any]]:
    out = copy.deepcopy(containers)
    target = next((c for c in out if c.get("name") == CONTAINER), out[0] if out else None)
    if target is None:
        raise InputError("the InferenceService predictor has no container to point at the model")
    kept = [e for e in target.get("env") or [] if e.get("name") not in env]
    target["env"] = kept + [{"name": k, "value": v} for k, v in env.items()]
    return out


def canary_name(ref: str) -> str:
    """DNS-1123 name of a Standard-mode canary: ``<slug>-vNNNN`` cut to fit ``{isvc}-{name}-predictor``."""
    return ref.replace("/", "-").lower()[:40].strip("-")


def canary_patch(isvc: dict[str, Any], ref: str, storage_uri: str, percent: int) -> dict[str, Any]:
    if not 1 <= percent <= 99:
        raise InputError(f"canary percent must be between 1 and 99 (got {percent})")
    predictor = (isvc.get("spec") or {}).get("predictor") or {}
    containers = _with_env(predictor.get("containers") or [], model_env(ref, storage_uri))
    meta = {"metadata": {"annotations": {CANARY_ANNOTATION: ref}}}
    if deployment_mode(isvc) == "knative":
        return {**meta, "spec": {"predictor": {"canaryTrafficPercent": percent, "containers": containers}}}
    canary_predictor = {k: v for k, v in copy.deepcopy(predictor).items() if k not in _CANARY_DROP}
    canary_predictor.update(name=canary_name(ref), containers=containers)
    return {**meta, "spec": {"canary": [{"trafficPercent": percent, "predictor": canary_predictor}]}}


def promote_patch(isvc: dict[str, Any]) -> dict[str, Any]:
    annotations = (isvc.get("metadata") or {}).get("annotations") or {}
    ref = annotations.get(CANARY_ANNOTATION)
    spec = isvc.get("spec") or {}
    meta = {"metadata": {"annotations": {CANARY_ANNOTATION: None, PRODUCTION_ANNOTATION: ref}}}
    if deployment_mode(isvc) == "knative":
        if spec.get("predictor", {}).get("canaryTrafficPercent") is None:
            raise InputError("the InferenceService has no canary (no canaryTrafficPercent): nothing to promote")
        return {**meta, "spec": {"predictor": {"canaryTrafficPercent": None}}}
    canaries = spec.get("canary") or []
    if not canaries:
        raise InputError("the InferenceService has no canary (spec.canary is empty): nothing to promote")
    stable = {**(spec.get("predictor") or {}), **copy.deepcopy(canaries[0]["predictor"])}
    return {**meta, "spec": {"predictor": stable, "canary": None}}


def rollback_patch(isvc: dict[str, Any]) -> dict[str, Any]:
    spec = isvc.get("spec") or {}
    meta = {"metadata": {"annotations": {CANARY_ANNOTATION: None}}}
    if deployment_mode(isvc) == "knative":
        if spec.get("predictor", {}).get("canaryTrafficPercent") is None:
            raise InputError("the InferenceService has no canary: nothing to roll back")
        return {**meta, "spec": {"predictor": {"canaryTrafficPercent": 0}}}
    if not spec.get("canary"):
        raise InputError("the InferenceService has no canary: nothing to roll back")
    return {**meta, "spec": {"canary": None}}


def pin_patch(isvc: dict[str, Any], ref: str | None, storage_uri: str | None) -> dict[str, Any]:
    """Serve ``ref`` at 100 % with no canary (a production rollback); None = the base model of the image."""
    predictor = (isvc.get("spec") or {}).get("predictor") or {}
    env = model_env(ref, storage_uri) if ref and storage_uri else {}
    containers = copy.deepcopy(predictor.get("containers") or [])
    if env:
        containers = _with_env(containers, env)
    else:
        for c in containers:
            c["env"] = [e for e in c.get("env") or [] if e.get("name") not in model_env("", "")]
    meta = {"metadata": {"annotations": {CANARY_ANNOTATION: None, PRODUCTION_ANNOTATION: ref}}}
    if deployment_mode(isvc) == "knative":
        return {**meta, "spec": {"predictor": {"canaryTrafficPercent": None, "containers": containers}}}
    return {**meta, "spec": {"predictor": {"containers": containers}, "canary": None}}


def describe(isvc: dict[str, Any]) -> dict[str, Any]:
    """Mode, canary share and refs of an InferenceService, for ``deploy status``."""
    spec = isvc.get("spec") or {}
    annotations = (isvc.get("metadata") or {}).get("annotations") or {}
    mode = deployment_mode(isvc)
    if mode == "knative":
        percent = spec.get("predictor", {}).get("canaryTrafficPercent")
    else:
        percent = sum(int(c.get("trafficPercent") or 0) for c in spec.get("canary") or []) or None
    return {
        "name": isvc.get("metadata", {}).get("name"),
        "mode": mode,
        "canary_percent": percent,
        "canary_ref": annotations.get(CANARY_ANNOTATION),
        "production_ref": annotations.get(PRODUCTION_ANNOTATION),
        "ready": next(
            (c.get("status") for c in (isvc.get("status") or {}).get("conditions") or [] if c.get("type") == "Ready"),
            None,
        ),
    }


class InferenceServiceClient:
    """GET and merge-PATCH the twin's InferenceService with the KServe SDK client (kubernetes underneath)."""

    def __init__(self, settings: Settings, client: Any = None) -> None:
        self.name = settings.deploy.isvc_name
        self.namespace = settings.deploy.namespace
        if client is None:
            from kserve import KServeClient

            kubeconfig = settings.deploy.kubeconfig
            try:
                client = KServeClient(config_file=str(kubeconfig)) if kubeconfig else KServeClient()
            except Exception as exc:  # noqa: BLE001 - no kubeconfig / no in-cluster service account
                raise BackendUnavailable(f"Kubernetes API: cannot configure a client: {exc}") from None
        self.client = client

    def get(self) -> dict[str, Any]:
        try:
            return self.client.api_instance.get_namespaced_custom_object(
                GROUP, VERSION, self.namespace, PLURAL, self.name
            )
        except Exception as exc:  # noqa: BLE001
            raise self._error("GET", exc) from None

    def patch(self, body: dict[str, Any]) -> dict[str, Any]:
        try:
            return self.client.api_instance.patch_namespaced_custom_object(
                GROUP, VERSION, self.namespace, PLURAL, self.name, body
            )
        except Exception as exc:  # noqa: BLE001
            raise self._error("PATCH", exc) from None

    def _error(self, verb: str, exc: Exception) -> Exception:
        status = getattr(exc, "status", None)
        what = f"InferenceService {self.namespace}/{self.name}"
        if status == 404:
            return InputError(f"{what} not found (TWIN_DEPLOY_ISVC_NAME / TWIN_DEPLOY_NAMESPACE)")
        if status in (400, 409, 422):
            return InputError(f"{verb} {what} refused ({status}): {getattr(exc, 'body', exc)}")
        return BackendUnavailable(f"{verb} {what}: {type(exc).__name__}: {str(exc)[:300]}")
