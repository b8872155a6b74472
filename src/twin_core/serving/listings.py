"""What a key sees of the served models: the ``twin`` alias and the versions that serve its own author.

One rule for every listing (``/openai/v1/models``, KServe ``/v1/models``, ``/v2/models``,
``/v2/models/{name}``): an API key sees the alias and, from the predictor's pool, its author's
production version (or the base model while it has none) and its canary. Never another author's
version: model versions name authors (``<author-slug>/vNNNN``). With keys disabled (local tests) every
served version is listed. The in-process predictor (``twin-llm``) is an implementation detail: never
listed, and every route naming it answers 404 (``gateway.py``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from fastapi import FastAPI, Request

from twin_core.serving.headers import trusted_author


@dataclass(frozen=True)
class ListedModel:
    id: str
    stage: str | None = None  # None for the alias


def author_versions(pool: Any, author: str | None, *, auth_disabled: bool) -> list[ListedModel]:
    """The served versions ``author`` may see (every served one when keys are disabled)."""
    if pool is None:
        return []
    if auth_disabled and author is None:
        models = pool.served()
    elif author is None:
        return []  # the gateway always names the author; without one, nothing but the alias
    else:
        route = pool.routes.get(author)
        models = [pool.base] if route is None else [route.production or pool.base, route.canary]
    return [ListedModel(m.version, m.stage) for m in models if m is not None]


class Listing:
    """The models a request may see, and name: the listings below and the OpenAI route's ``model`` check."""

    def __init__(self, server: Any, transformer: Any | None, *, auth_disabled: bool) -> None:
        self.server = server
        self.predictor = transformer.local_predictor if transformer is not None else None
        self.auth_disabled = auth_disabled
        # the in-process predictor: reached by the transformer directly, never by a client (the gateway
        # answers 404 for it); a ``--component predictor`` container has no transformer, so it hides nothing
        self.hidden: frozenset[str] = frozenset({self.predictor.name} if self.predictor is not None else ())

    def names(self) -> list[str]:
        return [n for n in self.server.dataplane.model_registry.get_models() if n not in self.hidden]

    def versions(self, headers: Any) -> list[ListedModel]:
        pool = self.predictor.pool if self.predictor is not None else None
        return author_versions(pool, trusted_author(headers), auth_disabled=self.auth_disabled)

    def ids(self, headers: Any) -> set[str]:
        """Every model id ``GET /openai/v1/models`` lists for these (gateway-rewritten) headers."""
        return set(self.names()) | {v.id for v in self.versions(headers)}


def add_listing_routes(app: FastAPI, listing: Listing) -> None:
    """Register the listings before KServe's own routes, so they answer for the same paths."""
    import time

    from kserve.errors import ModelNotFound

    created = int(time.time())

    async def kserve_models(request: Request) -> dict[str, Any]:
        return {"models": listing.names(), "versions": [v.id for v in listing.versions(request.headers)]}

    async def v2_metadata(model_name: str, request: Request) -> dict[str, Any]:
        if model_name not in listing.names():
            raise ModelNotFound(model_name)
        metadata = await listing.server.dataplane.model_metadata(model_name)
        return {**metadata, "versions": [v.id for v in listing.versions(request.headers)]}

    async def openai_models(request: Request) -> dict[str, Any]:
        entry = {"object": "model", "created": created, "owned_by": "llm-twin"}
        data = [{"id": name, **entry} for name in listing.names()]
        data += [{"id": v.id, **entry, "stage": v.stage} for v in listing.versions(request.headers)]
        return {"object": "list", "data": data}

    app.add_api_route("/v1/models", kserve_models, methods=["GET"])
    app.add_api_route("/v2/models", kserve_models, methods=["GET"])
    app.add_api_route("/v2/models/{model_name}", v2_metadata, methods=["GET"])
    app.add_api_route("/openai/v1/models", openai_models, methods=["GET"])
