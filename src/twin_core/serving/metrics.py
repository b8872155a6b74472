"""Prometheus metrics of the twin, exposed next to KServe's own on ``/metrics``."""

from __future__ import annotations

import json
import logging
from typing import Any

from prometheus_client import Counter, Gauge, Histogram

from twin_core.serving.error_bodies import error_body

log = logging.getLogger(__name__)

REQUESTS = Counter("twin_requests_total", "RAG requests by outcome", ["status"])
REJECTED = Counter("twin_rejected_total", "Requests refused before the model ran", ["reason"])
LOG_FAILURES = Counter("twin_request_log_failures_total", "inference_logs writes that failed")
RETRIEVAL_SECONDS = Histogram("twin_retrieval_seconds", "Retrieval latency (self-query to rerank)")
# Batched retrieval (serving/retrieval_batching.py): requests sharing one embed + vector search.
RETRIEVAL_BATCH_SIZE = Histogram(
    "twin_retrieval_batch_size", "Requests per batched retrieval", buckets=(1, 2, 3, 4, 6, 8, 12, 16, 32)
)
GENERATION_SECONDS = Histogram(
    "twin_generation_seconds", "LLM generation latency", buckets=(0.1, 0.25, 0.5, 1, 2, 5, 10, 20, 30, 60, 120)
)
TOKENS = Counter("twin_tokens_total", "Tokens processed", ["kind"])
IN_FLIGHT = Gauge("twin_requests_in_flight", "Inference requests being processed")
QUEUED = Gauge("twin_requests_queued", "Inference requests waiting for a slot")
# Every HTTP response by status code (gateway refusals included): the PrometheusRule's 5xx ratio
# in charts/llm-twin reads this series.
HTTP_RESPONSES = Counter("twin_serving_requests_total", "HTTP responses by status code", ["code"])


class StatusCounter:
    """Pure ASGI middleware counting every HTTP response in ``HTTP_RESPONSES``, and the app's last resort
    for unexpected errors: Starlette serves an ``Exception`` handler from its outermost middleware, outside
    this one, so such a 500 was never counted (and logged twice, by the handler and by uvicorn). Here it is
    answered, counted and logged once, and not raised further."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http" or scope.get("path") == "/metrics":
            await self.app(scope, receive, send)
            return
        started = False

        async def counting_send(message: dict) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
                HTTP_RESPONSES.labels(code=str(message["status"])).inc()
            await send(message)

        try:
            await self.app(scope, receive, counting_send)
        except Exception as exc:
            log.exception("unexpected error in %s %s", scope.get("method"), scope.get("path"))
            if not started:  # else the client sees its response cut short
                # KServe's 500 body (OpenAI's shape on the OpenAI routes)
                raw = json.dumps(error_body(scope.get("path", ""), 500, f"{type(exc).__name__} : {exc}")).encode()
                headers = [(b"content-type", b"application/json"), (b"content-length", str(len(raw)).encode())]
                await counting_send({"type": "http.response.start", "status": 500, "headers": headers})
                await counting_send({"type": "http.response.body", "body": raw})


# Batched generation (serving/batching.py), per served model version.
BATCH_SIZE = Histogram(
    "twin_batch_size", "Requests per batched generate", ["model_version"], buckets=(1, 2, 3, 4, 6, 8, 12, 16, 32)
)
BATCH_QUEUE_SECONDS = Histogram(
    "twin_batch_queue_seconds",
    "Time a generation waited before its batch started",
    ["model_version"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60),
)
PREFILL_TOKENS = Counter(
    "twin_prefill_tokens_total",
    "Prompt tokens of admitted generations: computed, or taken from the prefix cache",
    ["model_version", "source"],
)
BATCH_PENDING = Gauge("twin_batch_pending", "Generations waiting for a batch", ["model_version"])
BATCH_ACTIVE = Gauge("twin_batch_active", "Generations in the running batch", ["model_version"])
BATCH_CANCELLED = Counter(
    "twin_batch_cancelled_total",
    "Generations dropped: their client went away (reason client_gone) or their request timed out (timeout)",
    ["model_version", "reason"],
)
MODEL_REQUESTS = Counter(
    "twin_model_requests_total",
    "Generations by served model version, stage and outcome",
    ["model_version", "stage", "status"],
)
