"""The body of every error answer, by route family.

- KServe's routes (v1, v2, health, listings): KServe's own ``{"error": "<message>"}``, plus ``"kind"`` for a
  twin error (``input``, ``forbidden``, ``unavailable``...);
- the OpenAI routes (``/openai/...``): OpenAI's ``{"error": {"message", "type", "param", "code"}}``, which
  the OpenAI SDKs read into ``APIError.message``/``.type``/``.code``: ``type`` is ``invalid_request_error``
  for a 4xx and ``server_error`` for a 5xx; ``code`` the twin's kind, or what the gateway refused for.

Every producer of an error answer (the app's exception handlers, the gateway, the last-resort 500 of
``metrics.StatusCounter``, a stream's error event) builds its body here, so one route never answers in two
shapes.
"""

from __future__ import annotations

from typing import Any

OPENAI_PREFIX = "/openai/"


def is_openai_path(path: str) -> bool:
    return path.startswith(OPENAI_PREFIX)


def openai_error(status: int, message: str, code: str | None = None, param: str | None = None) -> dict[str, Any]:
    """OpenAI's error object (the value of ``"error"``)."""
    kind = "server_error" if status >= 500 else "invalid_request_error"
    return {"message": message, "type": kind, "param": param, "code": code}


def error_body(
    path: str, status: int, message: str, *, kind: str | None = None, code: str | None = None
) -> dict[str, Any]:
    """The JSON body of an error answer with ``status`` and ``message`` on ``path``. ``kind``: the twin's error
    kind, if any (KServe's body carries it too); ``code``: the OpenAI ``code`` when there is no kind (the
    gateway's reason: ``invalid_api_key``, ``request_too_large``...)."""
    if is_openai_path(path):
        return {"error": openai_error(status, message, kind or code)}
    body: dict[str, Any] = {"error": message}
    if kind is not None:
        body["kind"] = kind
    return body


def error_message(body: dict[str, Any]) -> str:
    """The message of an error body of either shape."""
    error = body["error"]
    return str(error["message"]) if isinstance(error, dict) else str(error)
