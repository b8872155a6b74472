"""The twins' KServe InferenceServices: canary, promote and rollback as JSON merge patches.

One InferenceService per author, ``<TWIN_DEPLOY_ISVC_NAME>-<author slug>`` (chart: serving.authors),
so one author's canary never touches another's. KServe 0.21 has two rollout mechanisms, chosen by the
``serving.kserve.io/deploymentMode`` annotation:

- **Knative** (called Serverless before 0.15): the predictor keeps one spec; changing it creates a new
  Knative revision and ``spec.predictor.canaryTrafficPercent`` sends that share of the traffic to it,
  the rest to the last revision rolled out at 100 %. Promote = remove ``canaryTrafficPercent`` (the new
  revision takes 100 %); rollback = ``canaryTrafficPercent: 0`` (traffic pinned to the previous revision).
- **Standard** (raw Deployments): ``spec.canary`` is a list of named canary predictors, each with a
  ``trafficPercent`` and its own Deployment ``{isvc}-{name}-predictor``. KServe accepts it only when
  the stable predictor has a model (``validateCanarySpecs``): the chart always gives it one.
  Promote = the stable predictor takes the canary's spec and name, the canary entry goes (no restart);
  rollback = the canary entry goes.

The model of the ``twin`` runtime is chosen by the predictor container's environment: ``STORAGE_URI``
(KServe's storage initializer downloads the registry's merged weights to /mnt/models),
``TWIN_LLM_MODEL_ID=/mnt/models`` and ``TWIN_LLM_MODEL_VERSION=<ref>`` (what every answer reports); the
Hugging Face runtime's by ``predictor.model.storageUri``. A JSON merge patch replaces lists whole, so a
patch carries the full container list read by a GET. The base model's URI is the
``llm-twin/base-storage-uri`` annotation (set by the chart): a rollback to the base model restores it.
"""

from __future__ import annotations

import copy
import logging
from typing import Any

from twin_core.domain import slugify
from twin_core.errors import BackendUnavailable, InputError
from twin_core.settings import Settings

log = logging.getLogger(__name__)

GROUP, VERSION, PLURAL = "serving.kserve.io", "v1beta1", "inferenceservices"
MODE_ANNOTATION = "serving.kserve.io/deploymentMode"
CANARY_ANNOTATION = "llm-twin/canary-ref"
PRODUCTION_ANNOTATION = "llm-twin/production-ref"
BASE_URI_ANNOTATION = "llm-twin/base-storage-uri"
BASE_VERSION_ANNOTATION = "llm-twin/base-version"
CONTAINER = "kserve-container"
MODEL_DIR = "/mnt/models"
MODEL_ENV = ("STORAGE_URI", "TWIN_LLM_MODEL_ID", "TWIN_LLM_MODEL_VERSION")
# Autoscaling fields a Standard-mode canary predictor may not carry (its replicas follow trafficPercent).
_CANARY_DROP = ("maxReplicas", "scaleMetric", "scaleMetricType", "scaleTarget", "autoScaling", "canaryTrafficPercent")


def isvc_name(settings: Settings, author: str) -> str:
    """The author's InferenceService: ``llm-twin-ada-quillfeather`` (author = full name or slug)."""
    return f"{settings.deploy.isvc_name}-{slugify(author)}"


def deployment_mode(isvc: dict[str, Any]) -> str:
    """ "knative" or "standard", from the annotation the chart always sets.

    KServe compares the annotation with the exact constant ("Standard"; validateCanarySpecs): with no
    annotation, or the old names RawDeployment / Serverless, a canary would be refused or half-work.
    """
    mode = ((isvc.get("metadata") or {}).get("annotations") or {}).get(MODE_ANNOTATION)
    if mode in ("Knative", "Standard"):
        return mode.lower()
    raise InputError(f"InferenceService {MODE_ANNOTATION}={mode!r}: twin deploy supports Knative or Standard")


def model_env(ref: str, storage_uri: str) -> dict[str, str]:
    return {"STORAGE_URI": storage_uri, "TWIN_LLM_MODEL_ID": MODEL_DIR, "TWIN_LLM_MODEL_VERSION": ref}


def _with_env(containers: list[dict[str, Any]], env: dict[str, str]) -> list[dict[str, Any]]:
    out = copy.deepcopy(containers)
    target = next((c for c in out if c.get("name") == CONTAINER), None)
    if target is None:  # KServe reads STORAGE_URI from kserve-container only (CustomPredictor.GetStorageUri)
        raise InputError(f"the InferenceService predictor has no {CONTAINER!r} container to point at the model")
    kept = [e for e in target.get("env") or [] if e.get("name") not in env]
    target["env"] = kept + [{"name": k, "value": v} for k, v in env.items()]
    return out


def model_fields(predictor: dict[str, Any], ref: str, storage_uri: str) -> dict[str, Any]:
    """The predictor fields that point it at ``storage_uri``: the twin container's env, or the
    Hugging Face runtime's ``model.storageUri`` (a merge patch keeps its other fields)."""
    if not storage_uri:
        raise InputError(f"{ref}: no storage URI: KServe needs a model (STORAGE_URI) for every predictor")
    if predictor.get("containers"):
        return {"containers": _with_env(predictor["containers"], model_env(ref, storage_uri))}
    if predictor.get("model"):
        return {"model": {**copy.deepcopy(predictor["model"]), "storageUri": storage_uri}}
    raise InputError("the InferenceService predictor has neither containers nor a model: cannot place a version")


def canary_name(ref: str) -> str:
    """Name of a Standard-mode canary predictor: the version (``v0003``); the InferenceService is
    already the author's, so ``{isvc}-v0003-predictor`` stays well under 63 characters."""
    return ref.rsplit("/", 1)[-1].lower()


def canary_patch(isvc: dict[str, Any], ref: str, storage_uri: str, percent: int) -> dict[str, Any]:
    """Start a canary of ``ref`` at ``percent``, or re-weight the running one (same ref: only the
    share changes, no new revision / Deployment)."""
    if not 1 <= percent <= 99:
        raise InputError(f"canary percent must be between 1 and 99 (got {percent})")
    predictor = (isvc.get("spec") or {}).get("predictor") or {}
    fields = model_fields(predictor, ref, storage_uri)
    meta = {"metadata": {"annotations": {CANARY_ANNOTATION: ref}}}
    if deployment_mode(isvc) == "knative":
        return {**meta, "spec": {"predictor": {"canaryTrafficPercent": percent, **fields}}}
    if canary_name(ref) == predictor.get("name"):
        raise InputError(f"{ref} is already the stable predictor of {isvc['metadata']['name']}")
    canary_predictor = {k: v for k, v in copy.deepcopy(predictor).items() if k not in _CANARY_DROP}
    if "model" in fields:
        fields = {"model": {**(predictor.get("model") or {}), **fields["model"]}}
    canary_predictor.update(name=canary_name(ref), **fields)
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
    """Serve ``ref`` at 100 % with no canary (a production rollback); None = the base model, whose
    URI the chart keeps in an annotation (the stable predictor never loses its model)."""
    annotations = (isvc.get("metadata") or {}).get("annotations") or {}
    predictor = (isvc.get("spec") or {}).get("predictor") or {}
    if ref and storage_uri:
        fields, name = model_fields(predictor, ref, storage_uri), canary_name(ref)
    else:
        base = annotations.get(BASE_URI_ANNOTATION)
        if not base:
            raise InputError(f"no {BASE_URI_ANNOTATION} annotation: cannot roll back to the base model")
        fields, name = model_fields(predictor, annotations.get(BASE_VERSION_ANNOTATION) or "base", base), None
    meta = {"metadata": {"annotations": {CANARY_ANNOTATION: None, PRODUCTION_ANNOTATION: ref}}}
    if deployment_mode(isvc) == "knative":
        return {**meta, "spec": {"predictor": {"canaryTrafficPercent": None, **fields}}}
    # a new stable name goes with a new model (validatePredictorNameChange): a new Deployment
    return {**meta, "spec": {"predictor": {"name": name, **fields}, "canary": None}}


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
        # huggingface: answers do not say which version served them (one served model name)
        "runtime": "huggingface" if (spec.get("predictor") or {}).get("model") else "twin",
        "canary_percent": percent,
        "canary_ref": annotations.get(CANARY_ANNOTATION),
        "production_ref": annotations.get(PRODUCTION_ANNOTATION),
        "ready": next(
            (c.get("status") for c in (isvc.get("status") or {}).get("conditions") or [] if c.get("type") == "Ready"),
            None,
        ),
    }


# --------------------------------------------------------------------------- the interface rollout uses


def patch_canary(isvc: InferenceServiceClient, ref: str, storage_uri: str, percent: int) -> dict[str, Any]:
    """Start or re-weight (progressive steps) the author's canary; returns ``describe`` of the result."""
    return describe(isvc.patch(canary_patch(isvc.get(), ref, storage_uri, percent)))


def promoted(isvc: dict[str, Any], ref: str) -> bool:
    """``ref`` is already the production of ``isvc``, with no canary left: a promotion that was killed before
    the registry recorded it (a re-run completes it without a patch, which KServe would refuse)."""
    annotations = (isvc.get("metadata") or {}).get("annotations") or {}
    info = describe(isvc)
    return annotations.get(PRODUCTION_ANNOTATION) == ref and not info["canary_ref"] and not info["canary_percent"]


def rolled_back(isvc: dict[str, Any]) -> bool:
    """No canary left in ``isvc`` (Knative: pinned at 0 %; Standard: no ``spec.canary``): a rollback that
    was killed before the registry recorded it. Knative's ``canaryTrafficPercent`` absent means the latest
    revision takes everything, which is not a rollback."""
    spec = isvc.get("spec") or {}
    if describe(isvc)["canary_ref"]:
        return False
    if deployment_mode(isvc) == "knative":
        return spec.get("predictor", {}).get("canaryTrafficPercent") == 0
    return not spec.get("canary")


def promote(isvc: InferenceServiceClient, ref: str | None = None) -> dict[str, Any]:
    """Promote the canary; when ``ref`` is already promoted there, nothing is patched (a re-run)."""
    current = isvc.get()
    if ref is not None and promoted(current, ref):
        log.info("%s is already the production of %s: no patch", ref, isvc.name)
        return describe(current)
    return describe(isvc.patch(promote_patch(current)))


def rollback(isvc: InferenceServiceClient, ref: str | None = None) -> dict[str, Any]:
    """Roll the canary back; when ``ref``'s canary is gone already, nothing is patched (a re-run). A ``ref`` the
    cluster already serves as production (a promotion killed before the registry recorded it) is refused:
    archiving it would leave the cluster serving a version the registry calls rolled back."""
    current = isvc.get()
    if ref is not None and promoted(current, ref):
        raise InputError(
            f"{ref} is already the production of {isvc.name} in the cluster (a promotion that did not reach the "
            f"registry): finish it with `twin deploy promote {ref}`, then roll production back if needed; "
            "nothing changed"
        )
    if ref is not None and rolled_back(current):
        log.info("%s: the canary %s is rolled back already: no patch", isvc.name, ref)
        return describe(current)
    return describe(isvc.patch(rollback_patch(current)))


def pin(isvc: InferenceServiceClient, ref: str | None, storage_uri: str | None) -> dict[str, Any]:
    return describe(isvc.patch(pin_patch(isvc.get(), ref, storage_uri)))


def status_of(isvc: InferenceServiceClient) -> dict[str, Any]:
    """``describe``, or the reason it cannot be read (an author with no InferenceService yet)."""
    try:
        return describe(isvc.get())
    except InputError as exc:
        return {"name": isvc.name, "error": str(exc)}


class InferenceServiceClient:
    """GET and merge-PATCH one author's InferenceService with the KServe SDK client (kubernetes underneath)."""

    def __init__(self, settings: Settings, client: Any = None, *, author: str | None = None) -> None:
        self.settings = settings
        self.name = isvc_name(settings, author) if author else settings.deploy.isvc_name
        self.namespace = settings.deploy.namespace
        if client is None:
            from kserve import KServeClient

            kubeconfig = settings.deploy.kubeconfig
            try:
                client = KServeClient(config_file=str(kubeconfig)) if kubeconfig else KServeClient()
            except Exception as exc:  # noqa: BLE001 - no kubeconfig / no in-cluster service account
                raise BackendUnavailable(f"Kubernetes API: cannot configure a client: {exc}") from None
        self.client = client

    def for_author(self, author: str) -> InferenceServiceClient:
        """The same API client, aimed at ``author``'s InferenceService."""
        return InferenceServiceClient(self.settings, self.client, author=author)

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
            return InputError(
                f"{what} not found: list the author in the chart's serving.authors "
                "(TWIN_DEPLOY_ISVC_NAME / TWIN_DEPLOY_NAMESPACE)"
            )
        if status == 403:
            # RBAC, not an outage: the chart's deployer Role names exactly the InferenceServices it renders
            # (serving.authors), so an unlisted author's is forbidden, whether it exists or not. A retry
            # gets the same answer: bad input (exit 3, not retried), like the 404 above.
            return InputError(
                f"{verb} {what} forbidden (403): list the author in the chart's serving.authors (the "
                "deployer Role may get/patch only the InferenceServices the chart renders), or give the "
                "deployer service account (tasks.deployer.serviceAccountName) RBAC get and patch on it "
                "(Role and RoleBinding llm-twin-deployer)"
            )
        if status in (400, 409, 422):
            return InputError(f"{verb} {what} refused ({status}): {getattr(exc, 'body', exc)}")
        return BackendUnavailable(f"{verb} {what}: {type(exc).__name__}: {str(exc)[:300]}")
