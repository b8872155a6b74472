"""canary / promote / rollback / status: registry stages, and the InferenceService on Kubernetes.

Local target: the registry is the whole state; ``twin serve`` polls it and follows (production +
canary side by side; the split is per request, sticky per explicit client id). Kubernetes target:
the InferenceService is patched first (a refused patch changes nothing), then the registry records
the stage with its reason and numbers.
"""

from __future__ import annotations

from typing import Any

from twin_core.deploy import kserve
from twin_core.deploy.analysis import load_config
from twin_core.domain import slugify
from twin_core.errors import InputError
from twin_core.settings import Settings
from twin_core.stores.registry import CANARY_ROLLED_BACK_REASON, ModelVersion, open_registry


def deploy_target(settings: Settings) -> str:
    """ "local" or "kubernetes" (TWIN_DEPLOY_TARGET; auto follows TWIN_EXECUTION)."""
    return settings.execution if settings.deploy.target == "auto" else settings.deploy.target


def _summary(mv: ModelVersion | None) -> dict[str, Any] | None:
    if mv is None:
        return None
    return {"ref": mv.ref, "stage": mv.stage, "canary_percent": mv.canary_percent, "storage_uri": mv.storage_uri}


def _isvc(settings: Settings, client: Any, author: str) -> kserve.InferenceServiceClient | None:
    """The author's own InferenceService (llm-twin-<slug>), or None on the local target."""
    if deploy_target(settings) != "kubernetes":
        return None
    if isinstance(client, kserve.InferenceServiceClient):
        return client.for_author(author)
    return kserve.InferenceServiceClient(settings, author=author)


def _first_step(settings: Settings) -> int:
    return load_config(settings).step_weights[0]


def find_canary(settings: Settings, author: str | None = None, ref: str | None = None) -> ModelVersion:
    """The canary to act on: of ``ref``'s author, of ``author``, or the only one in the registry."""
    reg = open_registry(settings)
    if ref:
        mv = reg.get(ref)
        if mv.stage != "canary":
            raise InputError(f"{mv.ref} is not a canary (stage {mv.stage}): nothing to do")
        return mv
    if author:
        mv = reg.canary(author)
        if mv is None:
            raise InputError(f"{author} has no canary: nothing to do (start one with twin deploy canary REF)")
        return mv
    canaries = [mv for mv in reg.list() if mv.stage == "canary"]
    if not canaries:
        raise InputError("no canary in the registry: nothing to do (start one with twin deploy canary REF)")
    if len(canaries) > 1:
        raise InputError(f"several canaries ({', '.join(c.ref for c in canaries)}): name one with --author or REF")
    return canaries[0]


def start_canary(
    settings: Settings,
    ref: str,
    percent: int | None = None,
    *,
    reason: str = "manual canary",
    numbers: dict[str, Any] | None = None,
    client: Any = None,
    force: bool = False,
) -> dict[str, Any]:
    """Start a canary at ``percent`` (default: the first step weight of configs/deploy.yaml), or
    re-weight the running one. An archived version (rolled back, or replaced) needs ``force``."""
    reg = open_registry(settings)
    mv = reg.get(ref)  # unknown -> InputError
    percent = _first_step(settings) if percent is None else percent
    if not 1 <= percent <= 99:
        raise InputError(f"canary percent must be between 1 and 99 (got {percent})")
    if mv.stage == "production":
        raise InputError(f"{mv.ref} is already the production version")
    if mv.stage == "archived" and not force:
        last = mv.history[-1].reason if mv.history else ""
        raise InputError(f"{mv.ref} is archived ({last}): canary it again only with --force")
    isvc = _isvc(settings, client, mv.author)
    cluster = None
    if isvc is not None:
        cluster = kserve.patch_canary(isvc, mv.ref, mv.storage_uri, percent)
    after = reg.set_stage(mv.ref, "canary", reason, numbers, canary_percent=percent)
    return {
        "action": "canary",
        "target": deploy_target(settings),
        "model": _summary(after),
        "production": _summary(reg.production(mv.author)),
        "kubernetes": cluster,
    }


def promote(
    settings: Settings,
    *,
    author: str | None = None,
    ref: str | None = None,
    reason: str = "manual promotion",
    numbers: dict[str, Any] | None = None,
    client: Any = None,
) -> dict[str, Any]:
    mv = find_canary(settings, author, ref)  # none -> InputError, nothing changed
    reg = open_registry(settings)
    previous = reg.production(mv.author)
    isvc = _isvc(settings, client, mv.author)
    cluster = kserve.promote(isvc, mv.ref) if isvc is not None else None
    after = reg.set_stage(mv.ref, "production", reason, numbers)
    return {
        "action": "promote",
        "target": deploy_target(settings),
        "model": _summary(after),
        "replaced": previous.ref if previous else None,
        "kubernetes": cluster,
    }


def rollback(
    settings: Settings,
    *,
    author: str | None = None,
    ref: str | None = None,
    reason: str = "manual rollback",
    numbers: dict[str, Any] | None = None,
    client: Any = None,
) -> dict[str, Any]:
    """Roll back the canary (archived; production keeps 100 %), or, with no canary, the production."""
    reg = open_registry(settings)
    canary = None
    try:
        canary = find_canary(settings, author, ref)
    except InputError:
        if ref or not author:
            raise
    isvc = _isvc(settings, client, canary.author if canary is not None else author)
    if canary is not None:
        cluster = kserve.rollback(isvc, canary.ref) if isvc is not None else None
        after = reg.set_stage(canary.ref, "archived", f"{CANARY_ROLLED_BACK_REASON}{reason}", numbers)
        return {
            "action": "rollback",
            "scope": "canary",
            "target": deploy_target(settings),
            "model": _summary(after),
            "production": _summary(reg.production(canary.author)),
            "kubernetes": cluster,
        }
    assert author is not None
    current = reg.production(author)
    target = next((mv for mv in reg.list(author) if mv.rollback_order == 1), None)
    cluster = None
    if isvc is not None and target is not None:
        # the cluster first, as for a canary: a run killed before the registry write re-pins the same
        # version on a re-run, where the registry first would have rolled back a second one
        cluster = kserve.pin(isvc, target.ref, target.storage_uri)
    restored = reg.rollback(author, reason)  # no previous production -> InputError, nothing changed
    return {
        "action": "rollback",
        "scope": "production",
        "target": deploy_target(settings),
        "model": _summary(restored),
        "replaced": current.ref if current else None,
        "kubernetes": cluster,
    }


def status(settings: Settings, author: str | None = None, *, client: Any = None) -> dict[str, Any]:
    reg = open_registry(settings)
    versions = reg.list(author)
    authors: dict[str, dict[str, Any]] = {}
    for mv in versions:
        entry = authors.setdefault(mv.author_slug, {"author": mv.author, "production": None, "canary": None})
        if mv.stage in ("production", "canary"):
            entry[mv.stage] = _summary(mv)
            changes = mv.history[-3:]
            entry[f"{mv.stage}_history"] = [c.model_dump(mode="json") for c in changes]
    if author and slugify(author) not in authors:
        authors[slugify(author)] = {"author": author, "production": None, "canary": None}
    clusters = {slug: _isvc(settings, client, slug) for slug in authors}
    return {
        "target": deploy_target(settings),
        "authors": authors,
        "kubernetes": {s: kserve.status_of(c) for s, c in clusters.items() if c is not None} or None,
    }
