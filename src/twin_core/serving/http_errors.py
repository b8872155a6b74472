"""The app's answers to the errors a request raises, each with one log line.

KServe's own handlers (``kserve.errors``) log every error with its traceback, a client's mistake (an
unknown model, a malformed body) included: a pod's log then reads as if the server had failed. Here:

- a 4xx is one INFO line, ``POST /v2/models/nope/infer -> 404: Model with name nope does not exist.``;
- a 503 or 501 (a store down, a model not ready, an unsupported route) is one ERROR line: its message
  says what is wrong, and a store that is down would otherwise log a traceback per request;
- a 500 is logged once at ERROR with its traceback (an error no handler takes is ``StatusCounter``'s, in
  ``metrics.py``);
- FastAPI's request validation error (a v2 body of the wrong shape, or not JSON) is a 400
  ``{"error": ...}`` naming the field, like every other malformed body (FastAPI answers 422);
- a 400 on the transformer's inference routes raised before the transformer ran (FastAPI's or KServe's
  parsing of the body, the OpenAI route's checks) is counted and written to the request log as one the
  transformer refused, as the 400s it raises itself are;
- KServe's parser refusing a JSON body that holds a lone surrogate (a v1 body sent as application/json)
  answers the twin's ``request body is not valid Unicode ...`` (``payloads.unparsed_surrogate``), as the
  routes that parse with Python's json do;
- a TwinError's 503 (a store or the LLM endpoint down) carries ``Retry-After: TWIN_SERVE_RETRY_AFTER_S``,
  as the gateway's "busy" 503s do;
- Starlette's own 404 (no such route) and 405 are ``{"error": ...}`` too, not FastAPI's ``{"detail": ...}``;
- every body has the shape of its route (``error_bodies.py``): OpenAI's error object on ``/openai/...``.
"""

from __future__ import annotations

import logging
from typing import Any

from twin_core.errors import BackendUnavailable, InputError, TwinError
from twin_core.inference.errors import AccessDenied, UnknownAuthor
from twin_core.serving.error_bodies import error_body, error_message
from twin_core.serving.gateway import is_inference_path, model_in_path
from twin_core.serving.kserve_import import import_kserve
from twin_core.serving.payloads import unparsed_surrogate

import_kserve()
from kserve import errors as kerr  # noqa: E402  (after import_kserve: kserve must not read our argv)

log = logging.getLogger(__name__)

# The most specific first; anything else (a ConfigError, an unexpected TwinError) is a 500.
_TWIN_STATUS: tuple[tuple[type[Exception], int], ...] = (
    (AccessDenied, 403),
    (UnknownAuthor, 404),
    (InputError, 400),
    (BackendUnavailable, 503),
)
# KServe's exceptions, answered as KServe's own handlers answer them (body ``{"error": str(exc)}``).
_KSERVE_STATUS: tuple[tuple[type[Exception], int], ...] = (
    (kerr.InvalidInput, 400),
    (kerr.ModelNotFound, 404),
    (kerr.ModelNotReady, 503),
    (kerr.ServerNotLive, 503),
    (kerr.ServerNotReady, 503),
    (kerr.InferenceError, 500),
    (kerr.UnsupportedProtocol, 501),
    (NotImplementedError, 501),
)


def status_of(exc: BaseException) -> int:
    """The HTTP status of ``exc``: its own ``http_status`` if it has one (the gateway's body-too-large
    error: 413), else the tables above; 500 for anything else."""
    declared = getattr(exc, "http_status", None)
    if isinstance(declared, int):
        return declared
    table = _TWIN_STATUS if isinstance(exc, TwinError) else _KSERVE_STATUS
    return next((code for kind, code in table if isinstance(exc, kind)), 500)


def _one_line(text: str) -> str:
    """``text`` on one line (a model name from the URL may hold a newline: no forged log lines)."""
    return text.replace("\r", "\\r").replace("\n", "\\n")


def log_answer(request: Any, status: int, reason: str, exc: BaseException) -> None:
    """One line (method, path, status, reason): INFO for a 4xx, ERROR for a 5xx; a 500 also gets its traceback."""
    where = _one_line(f"{request.method} {request.scope['path']}")
    if status >= 500:
        log.error("%s -> %d: %s", where, status, _one_line(reason), exc_info=exc if status == 500 else None)
    else:
        log.info("%s -> %d: %s", where, status, _one_line(reason))


def validation_reason(errors: list[Any]) -> str:
    """FastAPI's request validation errors as one message naming the wrong fields, e.g.
    ``invalid request body: inputs: Input should be a valid list``."""
    bad_json = next((e for e in errors if e.get("type") == "json_invalid"), None)
    if bad_json is not None:
        reason = (bad_json.get("ctx") or {}).get("error", "")
        return f"request body is not valid JSON {reason}".strip()
    # v2 infer reads its body as Union[InferenceRequest, bytes]: every error comes once per branch, the
    # branch's name second in its loc; the bytes branch ("Input should be a valid bytes") says nothing.
    union = any(tuple(e.get("loc", ()))[:2] == ("body", "bytes") for e in errors)
    shaped = [e for e in errors if tuple(e.get("loc", ()))[:2] != ("body", "bytes")] or errors
    parts = [_field_error(e, union) for e in shaped[:3]]
    more = f" (and {len(shaped) - 3} more)" if len(shaped) > 3 else ""
    return "invalid request body: " + "; ".join(parts) + more


def _field_error(error: Any, union: bool) -> str:
    loc = list(error.get("loc", ()))
    if loc[:1] == ["body"]:
        loc = loc[2:] if union and len(loc) > 1 else loc[1:]
    where = ""
    for part in loc:
        where += f"[{part}]" if isinstance(part, int) else (f".{part}" if where else str(part))
    if not where:  # the body itself: missing, null, a list, a string...
        return "expected a JSON object"
    if error.get("type") == "missing":
        return f"missing field '{where}'"
    return f"{where}: {error.get('msg', 'invalid')}"


class ErrorAnswers:
    """The app's exception handlers (``install``). ``transformer``: the RAG model whose request log gets
    the 400s raised before it ran (None in a predictor container, which keeps no request log);
    ``retry_after_s``: the ``Retry-After`` of a backend-down 503 (``TWIN_SERVE_RETRY_AFTER_S``)."""

    def __init__(self, transformer: Any | None, retry_after_s: int) -> None:
        self.transformer = transformer
        self.retry_after = str(retry_after_s)

    def install(self, app: Any) -> None:
        from fastapi.exceptions import RequestValidationError
        from starlette.exceptions import HTTPException as StarletteHTTPException

        app.add_exception_handler(TwinError, self.answer)
        for kind, _ in _KSERVE_STATUS:
            app.add_exception_handler(kind, self.answer)
        app.add_exception_handler(RequestValidationError, self.invalid_request)
        app.add_exception_handler(StarletteHTTPException, self.http_exception)
        # No handler for Exception: Starlette would serve it outside StatusCounter (a 500 never counted,
        # logged twice); StatusCounter answers, counts and logs unexpected errors itself.

    async def answer(self, request: Any, exc: Exception) -> Any:
        """A TwinError (``{"error", "kind"}``, 503s with Retry-After) or one of KServe's (``{"error"}``)."""
        status = status_of(exc)
        reason = str(exc)
        if isinstance(exc, kerr.InvalidInput):
            reason = unparsed_surrogate(reason) or reason
        kind = exc.kind if isinstance(exc, TwinError) else None
        body = error_body(request.scope["path"], status, reason, kind=kind)
        headers = {"Retry-After": self.retry_after} if status == 503 and isinstance(exc, TwinError) else None
        return await self._respond(request, exc, status, body, headers)

    async def invalid_request(self, request: Any, exc: Any) -> Any:
        """A body FastAPI could not read into the route's model (not JSON, wrong shape): 400, not 422."""
        body = error_body(request.scope["path"], 400, validation_reason(exc.errors()))
        return await self._respond(request, exc, 400, body)

    async def http_exception(self, request: Any, exc: Any) -> Any:
        """Starlette's own errors (no such route: 404, a route without this method: 405, a body that could
        not be read: 400) in the route's error shape, ``{"error": ...}``, not FastAPI's ``{"detail": ...}``; 405
        keeps its ``Allow`` header. Not a request the transformer refused: no request-log row (a body the
        gateway cut at its limit is its 413)."""
        status = exc.status_code
        body = error_body(request.scope["path"], status, str(exc.detail))
        return await self._respond(request, exc, status, body, dict(exc.headers or {}) or None, refusal=False)

    async def _respond(
        self,
        request: Any,
        exc: Exception,
        status: int,
        body: dict[str, Any],
        headers: dict[str, str] | None = None,
        *,
        refusal: bool = True,
    ) -> Any:
        from fastapi.responses import JSONResponse

        reason = error_message(body)
        log_answer(request, status, reason, exc)
        if status == 400 and refusal:
            await self._refused(request, exc, reason)
        return JSONResponse(status_code=status, content=body, headers=headers)

    async def _refused(self, request: Any, exc: Exception, reason: str) -> None:
        """Count and log a 400 on the transformer's inference routes that it did not see itself."""
        transformer = self.transformer
        if transformer is None or getattr(exc, "twin_logged", False):
            return
        method, path = request.method, request.scope["path"]
        if not is_inference_path(method, path) or model_in_path(path) not in (None, transformer.name):
            return
        await transformer.refused(dict(request.headers), InputError(reason))
