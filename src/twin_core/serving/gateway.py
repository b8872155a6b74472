"""The gateway in front of the inference routes (pure ASGI middleware): API key -> author, body-size
limit, bounded concurrency with a queue (then 503 + Retry-After), and a request timeout (504).

Health (``/v2/health/*``), readiness and ``/metrics`` stay open. The author header the models read is
always rewritten here: a client cannot forge it.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from kserve.errors import InvalidInput

from twin_core.serving import metrics
from twin_core.serving.auth import Auth
from twin_core.serving.models import AUTHOR_HEADER, CLIENT_HEADER
from twin_core.serving.routing import client_id_of
from twin_core.settings import Settings

log = logging.getLogger(__name__)

CLIENT_ID_HEADER = "x-twin-client-id"  # optional, from clients: sticky canary assignment per end user
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
        trusted = (AUTHOR_HEADER.encode(), CLIENT_HEADER.encode())
        headers = [(k, v) for k, v in scope["headers"] if k.lower() not in trusted]
        raw = dict(headers).get(b"authorization")
        key = raw.decode("latin-1") if raw else None
        if not self.auth.disabled:
            author = self.auth.author_for(key)
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
        client_hdr = dict(headers).get(CLIENT_ID_HEADER.encode())
        client = client_id_of(
            key.removeprefix("Bearer ").strip() if key else None,
            client_hdr.decode("latin-1") if client_hdr else None,
            (scope.get("client") or ("unknown",))[0],
        )
        headers.append((CLIENT_HEADER.encode(), client.encode("latin-1", errors="replace")))
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
        """Run the app with the body limit and the timeout; a client that disconnects before its
        response is complete cancels its request (its batch row stops, its slot is freed)."""
        started = False
        finished = False
        inbox: asyncio.Queue[dict] = asyncio.Queue()
        gone = asyncio.Event()

        async def pump() -> None:  # the only reader of the real `receive`: sees the disconnect
            received = 0
            while True:
                message = await receive()
                if message["type"] == "http.request":
                    received += len(message.get("body", b""))
                    if received > limit:
                        await inbox.put({"type": "twin.too_large"})
                        return
                await inbox.put(message)
                if message["type"] == "http.disconnect":
                    gone.set()
                    return

        async def app_receive() -> dict:
            message = await inbox.get()
            if message["type"] == "twin.too_large":
                raise _TooLarge
            return message

        async def tracking_send(message: dict) -> None:
            nonlocal started, finished
            if message["type"] == "http.response.start":
                started = True
            elif message["type"] == "http.response.body" and not message.get("more_body", False):
                finished = True
            await send(message)

        app_task = asyncio.ensure_future(self.app(scope, app_receive, tracking_send))
        pump_task = asyncio.ensure_future(pump())
        gone_task = asyncio.ensure_future(gone.wait())
        try:
            done, _ = await asyncio.wait(
                {app_task, gone_task},
                timeout=self.settings.serve.request_timeout_s,
                return_when=asyncio.FIRST_COMPLETED,
            )
            if app_task in done:
                app_task.result()
                return
            app_task.cancel()
            with contextlib.suppress(BaseException):
                await app_task
            if gone.is_set():
                if not finished:
                    metrics.REJECTED.labels(reason="disconnected").inc()
                    log.info("client went away: request %s %s cancelled", scope["method"], scope["path"])
                return
            metrics.REJECTED.labels(reason="timeout").inc()
            if not started:
                await _send_json(send, 504, {"error": "request timed out (TWIN_SERVE_REQUEST_TIMEOUT_S)"})
        except _TooLarge:
            metrics.REJECTED.labels(reason="too_large").inc()
            if not started:
                await _send_json(send, 413, {"error": f"request body above {limit} bytes"})
        finally:
            for task in (pump_task, gone_task, app_task):
                if not task.done():
                    task.cancel()
