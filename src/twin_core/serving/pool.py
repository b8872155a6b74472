"""The models the local predictor serves: the base model, and per author the registry's production
version and canary (CONTRACTS §4). Each has its own batcher (``serving/batching.py``).

``refresh`` reads the registry (one small ``registry.json`` per author, compared by state token) and
loads new versions before switching to them; a version that cannot load is logged and the author
keeps what it had. ``twin serve`` calls it every ``TWIN_SERVE_REGISTRY_POLL_S`` seconds, so a
promotion, a canary or a rollback is served without a restart.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, field
from typing import Any

from twin_core.domain import slugify
from twin_core.serving.batching import Batcher, ContinuousBatcher
from twin_core.serving.routing import goes_to_canary
from twin_core.settings import Settings

log = logging.getLogger(__name__)


@dataclass
class ServedModel:
    version: str  # what responses, metrics and the request log carry
    stage: str  # "base" | "production" | "canary"
    llm: Any
    batcher: Batcher
    ref: str | None = None  # registry ref, None for the base model


@dataclass
class AuthorRoute:
    author: str
    slug: str
    token: str = ""
    production: ServedModel | None = None
    canary: ServedModel | None = None
    canary_percent: int = 0
    errors: list[str] = field(default_factory=list)


class ModelPool:
    def __init__(self, settings: Settings, base_llm: Any, *, registry: Any = None) -> None:
        self.settings = settings
        self.base = ServedModel(base_llm.model_version, "base", base_llm, self._batcher(base_llm))
        self.routes: dict[str, AuthorRoute] = {}  # by author full name
        self._loaded: dict[str, ServedModel] = {}  # by registry ref
        self._registry = registry
        self._lock = threading.Lock()  # one refresh at a time
        self._retired: list[ServedModel] = []  # unloaded versions whose batcher the server closes

    def _batcher(self, llm: Any) -> Batcher:
        serve = self.settings.serve
        options = {
            "max_batch": serve.batch_max_size,
            "window_ms": serve.batch_window_ms,
            "enabled": serve.batching,
            "timeout_s": serve.request_timeout_s,
        }
        # iteration-level batching needs the model itself (a LocalLLM); anything else batches by window
        continuous = serve.batching and serve.batch_mode == "continuous" and hasattr(llm, "model")
        if continuous:
            options["prefix_cache"] = serve.prefix_cache
        rate = (getattr(serve, "faults", None) or {}).get(getattr(llm, "model_version", ""))
        if rate:  # a canary drill: this version fails that share of its requests (serving/faults.py)
            from twin_core.serving.faults import FaultyBatcher, FaultyContinuousBatcher

            return (FaultyContinuousBatcher if continuous else FaultyBatcher)(llm, float(rate), **options)
        return (ContinuousBatcher if continuous else Batcher)(llm, **options)

    @property
    def registry(self) -> Any:
        if self._registry is None:
            from twin_core.stores.registry import open_registry

            self._registry = open_registry(self.settings)
        return self._registry

    # -- choosing ------------------------------------------------------------------------------
    def choose(self, author: str | None, client_id: str) -> ServedModel:
        route = self.routes.get(author) if author else None
        if route is None:
            return self.base
        if route.canary is not None and goes_to_canary(client_id, route.slug, route.canary.ref, route.canary_percent):
            return route.canary
        return route.production or self.base

    def served(self) -> list[ServedModel]:
        """Every distinct model being served (base first)."""
        out = [self.base]
        for route in self.routes.values():
            for model in (route.production, route.canary):
                if model is not None and model not in out:
                    out.append(model)
        return out

    def describe(self) -> dict[str, Any]:
        return {
            name: {
                "production": r.production.version if r.production else None,
                "canary": r.canary.version if r.canary else None,
                "canary_percent": r.canary_percent if r.canary else 0,
                "serving": (r.production or self.base).version,
            }
            for name, r in self.routes.items()
        }

    def take_retired(self) -> list[ServedModel]:
        with self._lock:
            out, self._retired = self._retired, []
        return out

    # -- registry ------------------------------------------------------------------------------
    def _load(self, ref: str, stage: str) -> ServedModel:
        from twin_core.llm.loading import load_local_folder

        model = self._loaded.get(ref)
        if model is None:
            llm = load_local_folder(self.settings, self.registry.local_weights(ref), ref)
            model = ServedModel(ref, stage, llm, self._batcher(llm), ref)
        model.stage = stage
        return model

    def refresh(self, authors: list[str]) -> list[str]:
        """Re-read the registry for ``authors``; returns what changed (for the log)."""
        changes: list[str] = []
        with self._lock:
            for author in authors:
                slug = slugify(author)
                try:
                    token = self.registry.state_token(author)
                except Exception as exc:  # registry unreachable: keep serving what we have
                    log.warning("registry unreadable for %s: %s", author, exc)
                    continue
                old = self.routes.get(author)
                if old is not None and old.token == token:
                    continue
                route = AuthorRoute(author, slug, token)
                try:
                    prod = self.registry.production(author)
                    canary = self.registry.canary(author)
                except Exception as exc:
                    log.warning("registry unreadable for %s: %s", author, exc)
                    continue
                for mv, stage in ((prod, "production"), (canary, "canary")):
                    if mv is None:
                        continue
                    try:
                        model = self._load(mv.ref, stage)
                    except Exception as exc:
                        log.error("cannot serve %s (%s) for %s: %s", mv.ref, stage, author, exc)
                        route.errors.append(f"{mv.ref}: {exc}")
                        keep = getattr(old, stage, None) if old else None
                        model = keep  # keep serving the previous one of that stage, if any
                    if stage == "production":
                        route.production = model
                    else:
                        route.canary = model
                        route.canary_percent = int(mv.canary_percent or 0)
                self.routes[author] = route
                changes.append(self._say(route))
            used = {m.ref for m in self.served() if m.ref}
            for ref in [r for r in self._loaded if r not in used]:
                log.info("unloading %s (no longer production or canary)", ref)
                self._retired.append(self._loaded.pop(ref))
            for model in self.served():
                if model.ref:
                    self._loaded[model.ref] = model
        for line in changes:
            log.info(line)
        return changes

    def _say(self, route: AuthorRoute) -> str:
        if route.production is None:
            head = f"{route.author}: no production model in the registry, serving the base model {self.base.version}"
        else:
            head = f"{route.author}: serving production {route.production.version}"
        if route.canary is not None:
            head += f", canary {route.canary.version} for {route.canary_percent}% of clients"
        return head
