"""The HTTP application: KServe's v1/v2/health/metrics routes on our own FastAPI app, the twin's
error mapping, the gateway middleware, and an OpenAI-compatible chat route.

KServe's ``RESTServer`` hard-codes ``host="0.0.0.0"``; building the app ourselves (with KServe's
own endpoint registrars and DataPlane) lets ``twin serve`` bind 127.0.0.1 by default.
"""

from __future__ import annotations

import time
import uuid
from typing import Any

from fastapi import FastAPI, Request

from twin_core.errors import BackendUnavailable, ConfigError, InputError, NotYetAvailable, TwinError
from twin_core.inference.errors import AccessDenied, UnknownAuthor
from twin_core.serving.auth import Auth
from twin_core.serving.kserve_import import import_kserve
from twin_core.settings import Settings

import_kserve()


def _status(exc: TwinError) -> int:
    if isinstance(exc, AccessDenied):
        return 403
    if isinstance(exc, UnknownAuthor):
        return 404
    if isinstance(exc, InputError):
        return 400
    if isinstance(exc, BackendUnavailable):
        return 503
    if isinstance(exc, NotYetAvailable):
        return 501
    if isinstance(exc, ConfigError):
        return 500
    return 500


async def twin_error_handler(_request: Any, exc: TwinError) -> Any:
    from fastapi.responses import JSONResponse

    status = _status(exc)
    headers = {"Retry-After": "5"} if status == 503 else None
    return JSONResponse(status_code=status, content={"error": str(exc), "kind": exc.kind}, headers=headers)


def build_app(server: Any, settings: Settings, auth: Auth, transformer: Any | None) -> FastAPI:
    """A FastAPI app serving the models registered on ``server`` (a ``kserve.ModelServer``)."""
    from fastapi.responses import ORJSONResponse
    from kserve import errors as kerr
    from kserve.protocol.rest.server import metrics_handler
    from kserve.protocol.rest.v1_endpoints import register_v1_endpoints
    from kserve.protocol.rest.v2_endpoints import register_v2_endpoints

    from twin_core.serving.gateway import TwinGateway
    from twin_core.serving.metrics import StatusCounter

    app = FastAPI(title="LLM Twin", docs_url=None, redoc_url=None, default_response_class=ORJSONResponse)
    app.add_api_route("/", server.dataplane.live, methods=["GET"])
    app.add_api_route("/metrics", metrics_handler, methods=["GET"])
    register_v1_endpoints(app, server.dataplane, server.model_repository_extension)
    register_v2_endpoints(app, server.dataplane, server.model_repository_extension)
    if transformer is not None:
        _add_openai_route(app, transformer)

    app.add_exception_handler(TwinError, twin_error_handler)
    app.add_exception_handler(kerr.InvalidInput, kerr.invalid_input_handler)
    app.add_exception_handler(kerr.InferenceError, kerr.inference_error_handler)
    app.add_exception_handler(kerr.ModelNotFound, kerr.model_not_found_handler)
    app.add_exception_handler(kerr.ModelNotReady, kerr.model_not_ready_handler)
    app.add_exception_handler(NotImplementedError, kerr.not_implemented_error_handler)
    app.add_exception_handler(kerr.UnsupportedProtocol, kerr.unsupported_protocol_error_handler)
    app.add_exception_handler(kerr.ServerNotLive, kerr.server_not_live_handler)
    app.add_exception_handler(kerr.ServerNotReady, kerr.server_not_ready_handler)
    app.add_exception_handler(Exception, kerr.generic_exception_handler)
    app.add_middleware(TwinGateway, settings=settings, auth=auth)
    app.add_middleware(StatusCounter)  # added last = outermost: counts the gateway's refusals too
    return app


def _add_openai_route(app: FastAPI, transformer: Any) -> None:
    """``POST /openai/v1/chat/completions``: the last user message is the RAG query.

    KServe's own OpenAI route needs vLLM's protocol types (not installable here, and not needed on
    CPU); this route is plain JSON in OpenAI's shape, on top of the same transformer, so auth,
    limits, request log and metrics are identical. No streaming. Extra field ``sources``.
    """
    from kserve.errors import InvalidInput

    async def chat_completions(request: Request) -> dict[str, Any]:
        try:
            body = await request.json()
        except Exception:
            raise InvalidInput("request body is not valid JSON") from None
        if not isinstance(body, dict) or not isinstance(body.get("messages"), list) or not body["messages"]:
            raise InvalidInput("expected {'messages': [{'role': 'user', 'content': '...'}]}")
        users = [m for m in body["messages"] if isinstance(m, dict) and m.get("role") == "user"]
        if not users or not isinstance(users[-1].get("content"), str):
            raise InvalidInput("no user message with text content")
        if body.get("stream"):
            raise InvalidInput("stream=true is not supported by this endpoint")
        instance: dict[str, Any] = {"query": users[-1]["content"]}
        if body.get("max_tokens") is not None:
            instance["max_new_tokens"] = body["max_tokens"]
        if body.get("author") is not None:
            instance["author"] = body["author"]
        headers = dict(request.headers.items())
        response, _ = await transformer({"instances": [instance]}, headers)
        pred = response["predictions"][0]
        usage = pred["usage"]
        finish = "length" if usage["completion_tokens"] >= instance.get("max_new_tokens", 10**9) else "stop"
        return {
            "id": f"chatcmpl-{uuid.uuid4().hex}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": pred["model_version"],
            "choices": [
                {"index": 0, "message": {"role": "assistant", "content": pred["answer"]}, "finish_reason": finish}
            ],
            "usage": {**usage, "total_tokens": usage["prompt_tokens"] + usage["completion_tokens"]},
            "sources": pred["sources"],
        }

    app.add_api_route("/openai/v1/chat/completions", chat_completions, methods=["POST"])
