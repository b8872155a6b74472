"""The HTTP application: KServe's v1/v2/health/metrics routes on our own FastAPI app, the twin's
error answers (``http_errors.py``), the gateway middleware, and an OpenAI-compatible chat route.

KServe's ``RESTServer`` hard-codes ``host="0.0.0.0"``; building the app ourselves (with KServe's
own endpoint registrars and DataPlane) lets ``twin serve`` bind 127.0.0.1 by default.
"""

from __future__ import annotations

import json
import logging
import time
import uuid
from typing import Any

from fastapi import FastAPI, Request

from twin_core.errors import TwinError
from twin_core.serving.auth import Auth
from twin_core.serving.error_bodies import openai_error
from twin_core.serving.kserve_import import import_kserve
from twin_core.serving.payloads import valid_text
from twin_core.settings import Settings

import_kserve()
log = logging.getLogger(__name__)


def build_app(server: Any, settings: Settings, auth: Auth, transformer: Any | None) -> FastAPI:
    """A FastAPI app serving the models registered on ``server`` (a ``kserve.ModelServer``)."""
    from fastapi.responses import ORJSONResponse
    from kserve.protocol.rest.server import metrics_handler
    from kserve.protocol.rest.v1_endpoints import register_v1_endpoints
    from kserve.protocol.rest.v2_endpoints import register_v2_endpoints

    from twin_core.serving.gateway import TwinGateway
    from twin_core.serving.http_errors import ErrorAnswers
    from twin_core.serving.listings import Listing, add_listing_routes
    from twin_core.serving.metrics import StatusCounter

    app = FastAPI(title="LLM Twin", docs_url=None, redoc_url=None, default_response_class=ORJSONResponse)
    app.add_api_route("/", server.dataplane.live, methods=["GET"])
    app.add_api_route("/metrics", metrics_handler, methods=["GET"])
    listing = Listing(server, transformer, auth_disabled=auth.disabled)
    add_listing_routes(app, listing)  # before KServe's: these win
    register_v1_endpoints(app, server.dataplane, server.model_repository_extension)
    register_v2_endpoints(app, server.dataplane, server.model_repository_extension)
    if transformer is not None:
        _add_openai_route(app, transformer, listing)

    # KServe's errors too: a 4xx is one log line, not a traceback
    ErrorAnswers(transformer, settings.serve.retry_after_s).install(app)
    app.add_middleware(TwinGateway, settings=settings, auth=auth, hidden=listing.hidden)
    app.add_middleware(StatusCounter)  # added last = outermost: counts the gateway's refusals too
    return app


def _openai_instance(body: Any) -> tuple[dict[str, Any], bool, bool]:
    """OpenAI chat body -> (twin v1 instance, stream, include_usage); malformed -> InvalidInput (400)."""
    from kserve.errors import InvalidInput

    if not isinstance(body, dict) or not isinstance(body.get("messages"), list) or not body["messages"]:
        raise InvalidInput("expected {'messages': [{'role': 'user', 'content': '...'}]}")
    users = [(i, m) for i, m in enumerate(body["messages"]) if isinstance(m, dict) and m.get("role") == "user"]
    if not users:
        raise InvalidInput("no user message with text content")
    index, last = users[-1]
    instance: dict[str, Any] = {"query": _text_content(last.get("content"), f"messages[{index}].content")}
    # null is absent, as in OpenAI's API: "max_completion_tokens": null leaves max_tokens in force
    field = next((k for k in ("max_completion_tokens", "max_tokens") if body.get(k) is not None), None)
    if field is not None:
        if isinstance(body[field], bool) or not isinstance(body[field], int):
            raise InvalidInput(f"{field}: expected an integer, got {type(body[field]).__name__}")
        instance["max_new_tokens"] = body[field]
    if body.get("author") is not None:
        instance["author"] = body["author"]
    options = body.get("stream_options") if isinstance(body.get("stream_options"), dict) else {}
    return instance, _flag(body.get("stream"), "stream"), _flag(options.get("include_usage"), "include_usage")


def _text_content(content: Any, where: str) -> str:
    """A message's text: a string, or OpenAI's list of content parts, whose text parts are joined (one per
    line); a part of another type (an image, audio) is refused, not dropped."""
    from kserve.errors import InvalidInput

    if isinstance(content, list) and content:
        texts = []
        for j, part in enumerate(content):
            if not isinstance(part, dict) or part.get("type") != "text" or not isinstance(part.get("text"), str):
                raise InvalidInput(f"{where}[{j}]: only text parts are supported ({{'type': 'text', 'text': '...'}})")
            texts.append(part["text"])
        content = "\n".join(texts)
    if not isinstance(content, str):
        raise InvalidInput(f"{where}: expected a string or a list of text parts")
    return valid_text(content, where)


def _flag(value: Any, name: str) -> bool:
    """A boolean field (null is false): "no" or 0 are mistakes, not bool("no") == True."""
    from kserve.errors import InvalidInput

    if value is not None and not isinstance(value, bool):
        raise InvalidInput(f"{name}: expected true or false, got {type(value).__name__}")
    return bool(value)


def _unknown_model(body: Any, listing: Any, headers: Any) -> Any:
    """A 404 (OpenAI's ``model_not_found``) when ``model`` names nothing ``GET /openai/v1/models`` lists for
    this key (the ``twin`` alias, its author's versions); None when the model may be used (or is not given)."""
    from fastapi.responses import JSONResponse
    from kserve.errors import InvalidInput

    model = body.get("model") if isinstance(body, dict) else None
    if model is None:
        return None
    if not isinstance(model, str):
        raise InvalidInput(f"model: expected a string, got {type(model).__name__}")
    if model in listing.ids(headers):
        return None
    message = f"The model '{model}' does not exist or you do not have access to it (GET /openai/v1/models)"
    return JSONResponse(status_code=404, content={"error": openai_error(404, message, "model_not_found", "model")})


def _add_openai_route(app: FastAPI, transformer: Any, listing: Any) -> None:
    """The OpenAI-compatible API on top of the transformer (auth, limits, log and metrics as ``:predict``).

    - ``GET /openai/v1/models`` is in ``listings.py`` (a key sees only its own author's versions);
    - ``POST /openai/v1/chat/completions``: the last user message is the RAG query; ``max_tokens``
      (or ``max_completion_tokens``) maps to ``max_new_tokens``; extra fields ``sources``,
      ``served_stage``; ``stream: true`` answers server-sent events, one chunk per new piece of text,
      produced inside the shared batch; ``model`` must be one that ``/openai/v1/models`` lists (else 404).

    KServe's own OpenAI route needs vLLM's protocol types (not installable here, and not needed on CPU).
    """
    from fastapi.responses import StreamingResponse
    from kserve.errors import InvalidInput

    async def chat_completions(request: Request) -> Any:
        raw = await request.body()  # the gateway's body limit (413) and a departing client stay what they are
        try:
            body = json.loads(raw)
        except ValueError:
            raise InvalidInput("request body is not valid JSON") from None
        instance, stream, include_usage = _openai_instance(body)
        refused = _unknown_model(body, listing, request.headers)
        if refused is not None:
            return refused
        headers = dict(request.headers.items())
        completion_id = f"chatcmpl-{uuid.uuid4().hex}"
        if stream:
            state = await transformer.open_stream({"instances": [instance]}, headers)
            return StreamingResponse(
                _sse(transformer, state, headers, completion_id, instance, include_usage),
                media_type="text/event-stream",
                headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
            )
        response, _ = await transformer({"instances": [instance]}, headers)
        pred = response["predictions"][0]
        usage = pred["usage"]
        return {
            "id": completion_id,
            "object": "chat.completion",
            "created": int(time.time()),
            "model": pred["model_version"],
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": pred["answer"]},
                    "finish_reason": _finish_reason(usage, instance),
                }
            ],
            "usage": {**usage, "total_tokens": usage["prompt_tokens"] + usage["completion_tokens"]},
            "sources": pred["sources"],
            "served_stage": pred.get("served_stage"),
        }

    app.add_api_route("/openai/v1/chat/completions", chat_completions, methods=["POST"])


def _finish_reason(usage: dict[str, Any], instance: dict[str, Any]) -> str:
    return "length" if usage["completion_tokens"] >= instance.get("max_new_tokens", 10**9) else "stop"


async def _sse(
    transformer: Any,
    state: Any,
    headers: dict[str, str],
    completion_id: str,
    instance: dict[str, Any],
    include_usage: bool,
) -> Any:
    """OpenAI ``chat.completion.chunk`` events: role, text deltas, finish reason (+ usage), [DONE]."""
    created = int(time.time())
    model = (
        transformer.local_predictor.choose(state.payload["instances"][0]).version
        if (transformer.local_predictor is not None and transformer.local_predictor.pool is not None)
        else transformer.name
    )

    def chunk(delta: dict[str, Any], finish: str | None = None, **extra: Any) -> str:
        body = {
            "id": completion_id,
            "object": "chat.completion.chunk",
            "created": created,
            "model": model,
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
            **extra,
        }
        return f"data: {json.dumps(body)}\n\n"

    yield chunk({"role": "assistant", "content": ""})
    try:
        async for piece in transformer.stream(state, headers):
            if isinstance(piece, str):
                yield chunk({"content": piece})
                continue
            usage = piece["usage"]
            model = piece["model_version"]
            yield chunk(
                {},
                _finish_reason(usage, instance),
                sources=piece["sources"],
                served_stage=piece.get("served_stage"),
            )
            if include_usage:
                total = usage["prompt_tokens"] + usage["completion_tokens"]
                body = {
                    "id": completion_id,
                    "object": "chat.completion.chunk",
                    "created": created,
                    "model": model,
                    "choices": [],
                    "usage": {**usage, "total_tokens": total},
                }
                yield f"data: {json.dumps(body)}\n\n"
    except Exception as exc:  # after the headers went out: an error event then [DONE], as OpenAI streams do
        yield _error_event(exc, completion_id)
    yield "data: [DONE]\n\n"


def _error_event(exc: Exception, completion_id: str) -> str:
    """The SSE error event of a stream that failed after its headers (the transformer has logged the
    request and counted it)."""
    from twin_core.serving.http_errors import status_of

    log.warning("chat stream %s failed: %s: %s", completion_id, type(exc).__name__, exc)
    if isinstance(exc, TwinError):  # OpenAI's error object, as the route's HTTP errors carry it
        error = openai_error(status_of(exc), str(exc), exc.kind)
    else:  # a generation failure (a fault drill, a batch error)
        error = openai_error(500, f"generation failed ({type(exc).__name__}: {exc})")
    return f"data: {json.dumps({'error': error})}\n\n"
