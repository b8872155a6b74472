"""The gateway in front of the inference routes (pure ASGI middleware): API key -> author, body-size
limit, bounded concurrency with a queue (then 503 + Retry-After), and a request timeout (504).

Health (``/v2/health/*``), readiness and ``/metrics`` stay open. The author header the models read is
always rewritten here: a client cannot forge it.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from kserve.errors import InvalidInput

from twin_core.serving import metrics
from twin_core.serving.auth import Auth
from twin_core.serving.models import AUTHOR_HEADER
from twin_core.settings import Settings

log = logging.getLogger(__name__)

ASGIApp = Callable[[dict, Callable, Callable], Awaitable[None]]


class _TooLarge(InvalidInput):
    """Raised while streaming a body without Content-Length; KServe's handler turns it into a 400."""

    def __init__(self) -> None:
        super().__init__("request body too large (TWIN_SERVE_MAX_BODY_BYTES)")


def is_inference_path(method: str, path: str) -> bool:
    if method != "POST":
        return False
    return (
        (path.startswith("/v1/models/") and path.endswith((":predict", ":explain")))
        or (path.startswith("/v2/models/") and path.endswith("/infer"))
        or path.startswith("/openai/")
    )


async def _send_json(send: Callable, status: int, body: dict[str, Any], headers: dict[str, str] | None = None) -> None:
    raw = json.dumps(body).encode()
    hdrs = [(b"content-type", b"application/json"), (b"content-length", str(len(raw)).encode())]
    hdrs += [(k.lower().encode(), v.encode()) for k, v in (headers or {}).items()]
    await send({"type": "http.response.start", "status": status, "headers": hdrs})
    await send({"type": "http.response.body", "body": raw})


class TwinGateway:
    def __init__(self, app: ASGIApp, settings: Settings, auth: Auth) -> None:
        self.app = app
        self.settings = settings
        self.auth = auth
        self.slots = asyncio.Semaphore(settings.serve.max_concurrency)
        self.waiting = 0
        self.retry_after = str(settings.serve.retry_after_s)

    async def __call__(self, scope: dict, receive: Callable, send: Callable) -> None:
        if scope["type"] != "http" or not is_inference_path(scope["method"], scope["path"]):
            await self.app(scope, receive, send)
            return
        headers = [(k, v) for k, v in scope["headers"] if k.lower() != AUTHOR_HEADER.encode()]
        if not self.auth.disabled:
            raw = dict(headers).get(b"authorization")
            author = self.auth.author_for(raw.decode("latin-1") if raw else None)
            if author is None:
                metrics.REJECTED.labels(reason="unauthorized").inc()
                await _send_json(
                    send,
                    401,
                    {"error": "missing or invalid API key (Authorization: Bearer <key>)"},
                    {"WWW-Authenticate": "Bearer"},
                )
                return
            headers.append((AUTHOR_HEADER.encode(), author.encode("utf-8")))
        scope = {**scope, "headers": headers}

        declared = dict(headers).get(b"content-length")
        limit = self.settings.serve.max_body_bytes
        if declared is not None and declared.isdigit() and int(declared) > limit:
            metrics.REJECTED.labels(reason="too_large").inc()
            await _send_json(send, 413, {"error": f"request body above {limit} bytes (TWIN_SERVE_MAX_BODY_BYTES)"})
            return

        # Bounded concurrency: `max_concurrency` run, `max_queue` wait, the rest are told to retry.
        if self.slots.locked() and self.waiting >= self.settings.serve.max_queue:
            metrics.REJECTED.labels(reason="overloaded").inc()
            await _send_json(send, 503, {"error": "server busy, retry later"}, {"Retry-After": self.retry_after})
            return
        self.waiting += 1
        metrics.QUEUED.inc()
        try:
            await asyncio.wait_for(self.slots.acquire(), timeout=self.settings.serve.request_timeout_s)
        except TimeoutError:
            metrics.REJECTED.labels(reason="queue_timeout").inc()
            await _send_json(send, 503, {"error": "server busy, retry later"}, {"Retry-After": self.retry_after})
            return
        finally:
            self.waiting -= 1
            metrics.QUEUED.dec()
        try:
            await self._run(scope, receive, send, limit)
        finally:
            self.slots.release()

    async def _run(self, scope: dict, receive: Callable, send: Callable, limit: int) -> None:
        received = 0
        started = False

        async def limited_receive() -> dict:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise _TooLarge
            return message

        async def tracking_send(message: dict) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await asyncio.wait_for(
                self.app(scope, limited_receive, tracking_send), timeout=self.settings.serve.request_timeout_s
            )
        except _TooLarge:
            metrics.REJECTED.labels(reason="too_large").inc()
            if not started:
                await _send_json(send, 413, {"error": f"request body above {limit} bytes"})
        except TimeoutError:
            metrics.REJECTED.labels(reason="timeout").inc()
            if not started:
                await _send_json(send, 504, {"error": "request timed out (TWIN_SERVE_REQUEST_TIMEOUT_S)"})
