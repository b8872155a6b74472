"""The gateway in front of the inference routes (pure ASGI middleware): API key -> author, body-size
limit, bounded concurrency with a queue (then 503 + Retry-After), and a request timeout (504).

Model listings need a key too (they show only its author's versions, ``listings.py``), without the
limits. Health (``/v2/health/*``), readiness and ``/metrics`` stay open. KServe's model repository
routes (``/v2/repository/…``: load/unload) are never served: ``twin serve`` and the registry poll
manage the models. The author header the models read is always rewritten here: a client cannot forge it.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Awaitable, Callable

from kserve.errors import InvalidInput

from twin_core.serving import metrics
from twin_core.serving.auth import Auth
from twin_core.serving.deadline import DEADLINE, Deadline
from twin_core.serving.error_bodies import error_body
from twin_core.serving.headers import AUTHOR_HEADER, CLIENT_HEADER
from twin_core.serving.routing import client_id_of
from twin_core.settings import Settings

log = logging.getLogger(__name__)

CLIENT_ID_HEADER = "x-twin-client-id"  # optional, from clients: sticky canary assignment per end user
ASGIApp = Callable[[dict, Callable, Callable], Awaitable[None]]


class _TooLarge(InvalidInput):
    """Raised in the app while it reads a body (without Content-Length) past the limit; whatever the app
    answers then, the gateway answers 413."""

    http_status = 413  # the app's answer (and its log line) says 413 too, not InvalidInput's 400

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


def is_listing_path(method: str, path: str) -> bool:
    """The model listings and a model's v2 metadata (``/v2/models/{name}``, not its readiness)."""
    if method != "GET":
        return False
    if path in ("/v1/models", "/v2/models", "/openai/v1/models"):
        return True
    parts = path.split("/")
    return len(parts) == 4 and path.startswith("/v2/models/") and bool(parts[3])


def closed_reason(path: str) -> str | None:
    """Why a KServe route is never served here (a 404, not KServe's 501 for a client's mistake), or None."""
    if path == "/v2/repository" or path.startswith("/v2/repository/"):
        return "not served: models are managed by twin serve and the registry"
    if path.startswith("/v1/models/") and path.endswith(":explain"):
        return "not served: the twin has no explainer"
    parts = path.split("/")
    if path.startswith("/v2/models/") and len(parts) > 4 and parts[4] == "versions":
        return (
            "not served: versions are not addressed by URL; the registry chooses the version that answers "
            "(GET /v2/models/{name} lists the ones serving your author)"
        )
    return None


def model_in_path(path: str) -> str | None:
    """The model a KServe route names (``/v1/models/{name}[:verb]``, ``/v2/models/{name}[/...]``), or None."""
    if path.startswith("/v1/models/"):
        name = path[len("/v1/models/") :].split("/", 1)[0]
        return name.removesuffix(":predict").removesuffix(":explain") or None
    if path.startswith("/v2/models/"):
        return path[len("/v2/models/") :].split("/", 1)[0] or None
    return None


async def _send_error(
    send: Callable,
    scope: dict,
    status: int,
    message: str,
    headers: dict[str, str] | None = None,
    code: str | None = None,
) -> None:
    """An error answer in the shape of the route (``error_bodies.py``); ``code``: OpenAI's ``code``."""
    raw = json.dumps(error_body(scope["path"], status, message, code=code)).encode()
    hdrs = [(b"content-type", b"application/json"), (b"content-length", str(len(raw)).encode())]
    hdrs += [(k.lower().encode(), v.encode()) for k, v in (headers or {}).items()]
    await send({"type": "http.response.start", "status": status, "headers": hdrs})
    await send({"type": "http.response.body", "body": raw})


class TwinGateway:
    def __init__(self, app: ASGIApp, settings: Settings, auth: Auth, hidden: frozenset[str] = frozenset()) -> None:
        self.app = app
        self.settings = settings
        self.auth = auth
        self.hidden = hidden  # models only the process itself calls (the in-process predictor): 404 outside
        self.slots = asyncio.Semaphore(settings.serve.max_concurrency)
        self.waiting = 0
        self.retry_after = str(settings.serve.retry_after_s)

    async def __call__(self, scope: dict, receive: Callable, send: Callable) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        method, path = scope["method"], scope["path"]
        reason = closed_reason(path)
        if reason is not None:
            await _send_error(send, scope, 404, reason)
            return
        model = model_in_path(path)
        # a hidden model is answered as one that does not exist (KServe's own words)
        unknown = f"Model with name {model} does not exist." if model in self.hidden else None
        listing = is_listing_path(method, path)
        if not listing and not is_inference_path(method, path):
            if unknown is not None:  # e.g. readiness
                await _send_error(send, scope, 404, unknown)
                return
            await self.app(scope, receive, send)
            return
        headers, key = await self._authenticate(scope, send)
        if headers is None:
            return
        if unknown is not None:  # after the key check, as for any unknown model
            await _send_error(send, scope, 404, unknown)
            return
        if listing:
            await self.app({**scope, "headers": headers}, receive, send)
            return
        await self._limited({**scope, "headers": headers}, receive, send, key)

    async def _authenticate(self, scope: dict, send: Callable) -> tuple[list | None, str | None]:
        """Headers without client-set trusted headers, plus the key's author; None after a 401."""
        trusted = (AUTHOR_HEADER.encode(), CLIENT_HEADER.encode())
        headers = [(k, v) for k, v in scope["headers"] if k.lower() not in trusted]
        raw = dict(headers).get(b"authorization")
        key = raw.decode("latin-1") if raw else None
        if self.auth.disabled:
            return headers, key
        author = self.auth.author_for(key)
        if author is None:
            metrics.REJECTED.labels(reason="unauthorized").inc()
            await _send_error(
                send,
                scope,
                401,
                "missing or invalid API key (Authorization: Bearer <key>)",
                {"WWW-Authenticate": "Bearer"},
                code="invalid_api_key",
            )
            return None, key
        return [*headers, (AUTHOR_HEADER.encode(), author.encode("utf-8"))], key

    async def _busy(self, send: Callable, scope: dict) -> None:
        busy = {"Retry-After": self.retry_after}
        await _send_error(send, scope, 503, "server busy, retry later", busy, code="server_busy")

    async def _limited(self, scope: dict, receive: Callable, send: Callable, key: str | None) -> None:
        """An inference request: client identity, body limit, bounded concurrency, then ``_run``."""
        headers = list(scope["headers"])
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
            await _send_error(send, scope, 413, _too_large(limit), code="request_too_large")
            return

        # Bounded concurrency: `max_concurrency` run, `max_queue` wait, the rest are told to retry.
        if self.slots.locked() and self.waiting >= self.settings.serve.max_queue:
            metrics.REJECTED.labels(reason="overloaded").inc()
            await self._busy(send, scope)
            return
        self.waiting += 1
        metrics.QUEUED.inc()
        try:
            await asyncio.wait_for(self.slots.acquire(), timeout=self.settings.serve.request_timeout_s)
        except TimeoutError:
            metrics.REJECTED.labels(reason="queue_timeout").inc()
            await self._busy(send, scope)
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
        exchange = _Exchange(receive, send, limit)
        deadline = Deadline(self.settings.serve.request_timeout_s)
        token = DEADLINE.set(deadline)  # the app's task runs in a copy of this context: it sees the deadline
        app_task = asyncio.ensure_future(self.app(scope, exchange.app_receive, exchange.app_send))
        DEADLINE.reset(token)
        pump_task = asyncio.ensure_future(exchange.pump())
        gone_task = asyncio.ensure_future(exchange.gone.wait())
        try:
            done, _ = await asyncio.wait(
                {app_task, gone_task},
                timeout=self.settings.serve.request_timeout_s,
                return_when=asyncio.FIRST_COMPLETED,
            )
            # An app that failed because the client left (Starlette's ClientDisconnect while it read the
            # body) is a departure, not a 500; one that read past the limit gets the 413 below.
            if app_task in done and not exchange.too_large and not (exchange.gone.is_set() and _failed(app_task)):
                app_task.result()
                return
            # cancelled for time, not for a departing client: the request log says error (deadline.py)
            deadline.passed = not done and not exchange.gone.is_set() and not exchange.too_large
            app_task.cancel()
            with contextlib.suppress(BaseException):
                await app_task
            if exchange.too_large:
                metrics.REJECTED.labels(reason="too_large").inc()
                if not exchange.started:
                    await _send_error(send, scope, 413, _too_large(limit), code="request_too_large")
                return
            if exchange.gone.is_set():
                if not exchange.finished:
                    metrics.REJECTED.labels(reason="disconnected").inc()
                    log.info("client went away: request %s %s cancelled", scope["method"], scope["path"])
                return
            metrics.REJECTED.labels(reason="timeout").inc()
            if not exchange.started:
                await _send_error(send, scope, 504, "request timed out (TWIN_SERVE_REQUEST_TIMEOUT_S)", code="timeout")
        finally:
            for task in (pump_task, gone_task, app_task):
                if not task.done():
                    task.cancel()


def _too_large(limit: int) -> str:
    return f"request body above {limit} bytes (TWIN_SERVE_MAX_BODY_BYTES)"


def _failed(task: asyncio.Future) -> bool:
    return not task.cancelled() and task.exception() is not None


class _Exchange:
    """One request's messages between the client and the app: ``pump`` alone reads the real
    ``receive`` (so it sees the disconnect) and enforces the body limit; ``app_send`` records how far
    the response got."""

    def __init__(self, receive: Callable, send: Callable, limit: int) -> None:
        self.receive, self.send, self.limit = receive, send, limit
        self.started = False  # response messages forwarded to the client
        self.finished = False
        self.too_large = False
        self.inbox: asyncio.Queue[dict] = asyncio.Queue()
        self.gone = asyncio.Event()

    async def pump(self) -> None:
        received = 0
        while True:
            message = await self.receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.limit:
                    self.too_large = True  # before the app can answer: its answer is replaced by a 413
                    await self.inbox.put({"type": "twin.too_large"})
                    return
            if message["type"] == "http.disconnect":
                self.gone.set()  # before the app can see it: _run must know why the app stopped
            await self.inbox.put(message)
            if self.gone.is_set():
                return

    async def app_receive(self) -> dict:
        message = await self.inbox.get()
        if message["type"] == "twin.too_large":
            raise _TooLarge
        return message

    async def app_send(self, message: dict) -> None:
        if self.too_large and not self.started:
            return  # the app's answer to a body cut at the limit (a 400 from its parser): _run sends 413
        if message["type"] == "http.response.start":
            self.started = True
        elif message["type"] == "http.response.body" and not message.get("more_body", False):
            self.finished = True
        await self.send(message)
