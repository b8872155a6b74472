"""The serving door as a client meets it (tests/serving/inproc.py: the real app, gateway and predictor around a
fake pipeline and LLM): a request past its timeout is the server's failure in the request log, not a departed
client; every error of the OpenAI routes is OpenAI's error object and every other route's KServe's
``{"error": ...}`` (unknown routes too); a v2 tensor whose datatype or shape is not what the twin reads is a 400;
a streamed prompt that does not fit the model's context is a 400 before the stream starts; OpenAI's content
parts are read."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest

from .inproc import (
    ADA_KEY,
    BASE_VERSION,
    BOOM,
    DOWN,
    HANG,
    TOO_LONG,
    InProcess,
    build,
    request,
    sample,
)

CHAT = "/openai/v1/chat/completions"
REASONS = ("client_gone", "timeout")  # twin_batch_cancelled_total's
PREDICT = "/v1/models/twin:predict"


def _chat(content: Any = "hi", **fields: Any) -> dict[str, Any]:
    return {"model": "twin", "messages": [{"role": "user", "content": content}], "max_tokens": 3, **fields}


def _rows(ip: InProcess) -> list[tuple[str, str | None, str]]:
    return [(r["status"], r.get("model_version"), type(r["error"]).__name__) for r in ip.pipeline.rows]


# -- 1. a timeout is the server's failure; a client that leaves is the client's ---------------------------
def _leave_mid_generation(ip: InProcess) -> None:
    """A client that sends a HANG request and leaves once its generation runs."""
    hanging = ip.predictor.llm.hanging
    body = json.dumps({"instances": [{"query": HANG}]}).encode()
    messages = [{"type": "http.request", "body": body, "more_body": False}]

    async def receive() -> dict[str, Any]:
        if messages:
            return messages.pop(0)
        await asyncio.to_thread(hanging.wait, 60)
        return {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        raise AssertionError(f"nobody to answer: {message}")

    scope = {
        "type": "http",
        "method": "POST",
        "path": PREDICT,
        "headers": [(b"authorization", f"Bearer {ADA_KEY}".encode()), (b"content-type", b"application/json")],
        "query_string": b"",
        "client": ("127.0.0.1", 5000),
    }
    asyncio.run(ip.app(scope, receive, send))


class _TimeoutOnceHanging:
    """The gateway's ``asyncio``, except that its ``wait`` (the request timeout) starts only once the fake
    LLM has started the HANG generation: the timeout then always ends a request that reached the model,
    however slowly this machine got there (no race against a 1 s wall clock)."""

    def __init__(self, hanging: Any) -> None:
        self.hanging = hanging

    def __getattr__(self, name: str) -> Any:
        return getattr(asyncio, name)

    async def wait(self, tasks: Any, *, timeout: float | None = None, **kw: Any) -> Any:
        await asyncio.to_thread(self.hanging.wait, 60)
        return await asyncio.wait(tasks, timeout=timeout, **kw)


def test_a_request_past_its_timeout_is_an_error_of_the_version_a_departure_a_cancellation(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from twin_core.serving import gateway

    labels = {"model_version": BASE_VERSION, "stage": "base"}

    def counts() -> tuple[float, ...]:
        statuses = [sample("twin_model_requests_total", **labels, status=s) for s in ("error", "cancelled")]
        reasons = [sample("twin_batch_cancelled_total", model_version=BASE_VERSION, reason=r) for r in REASONS]
        return (*statuses, *reasons)

    # a client that leaves mid-generation: the client's doing
    ip, before = build(), counts()
    _leave_mid_generation(ip)
    assert _rows(ip) == [("cancelled", BASE_VERSION, "RuntimeError")]
    assert counts() == (before[0], before[1] + 1, before[2] + 1, before[3])
    # the fake LLM never answers HANG: the gateway's timeout (1 s, counted once the generation started)
    # always ends the request
    ip, before = build(serve_request_timeout_s=1), counts()
    monkeypatch.setattr(gateway, "asyncio", _TimeoutOnceHanging(ip.predictor.llm.hanging))
    resp = request(ip, "POST", PREDICT, json={"instances": [{"query": HANG}]})
    assert resp.status_code == 504, resp.text
    assert resp.json() == {"error": "request timed out (TWIN_SERVE_REQUEST_TIMEOUT_S)"}
    # what the drift check and the canary analysis count: a server error of the version that hung
    assert _rows(ip) == [("error", BASE_VERSION, "RequestTimedOut")]
    assert "after 1 s (TWIN_SERVE_REQUEST_TIMEOUT_S)" in str(ip.pipeline.rows[0]["error"])
    assert counts() == (before[0] + 1, before[1], before[2], before[3] + 1)


# -- 2. error bodies: OpenAI's object on the OpenAI routes, KServe's {"error": ...} elsewhere ---------------
@pytest.mark.parametrize(
    ("method", "path", "kw", "status", "code", "message"),
    [
        ("POST", CHAT, {"json": _chat(), "headers": {}}, 401, "invalid_api_key", "missing or invalid API key"),
        ("POST", CHAT, {"content": b"{not json"}, 400, None, "request body is not valid JSON"),
        ("POST", CHAT, {"json": _chat(max_tokens="3")}, 400, None, "max_tokens: expected an integer, got str"),
        ("POST", CHAT, {"json": _chat(max_tokens=0)}, 400, "input", "max_new_tokens must be a positive integer"),
        ("POST", CHAT, {"json": _chat("")}, 400, "input", "query is empty"),
        ("POST", CHAT, {"json": _chat("a" * 5000)}, 413, "request_too_large", "request body above 1000 bytes"),
        ("POST", CHAT, {"json": _chat(BOOM)}, 500, None, "RuntimeError : the pipeline broke"),
        ("POST", CHAT, {"json": _chat(DOWN)}, 503, "unavailable", "the vector store is down"),
        ("POST", "/openai/v1/completions", {"json": {}}, 404, None, "Not Found"),
        ("GET", CHAT, {}, 405, None, "Method Not Allowed"),
    ],
)
def test_every_error_of_the_openai_routes_is_openais_error_object(
    method: str, path: str, kw: dict[str, Any], status: int, code: str | None, message: str
) -> None:
    ip = build(serve_max_body_bytes=1000)
    resp = request(ip, method, path, **kw)
    assert resp.status_code == status, resp.text
    error = resp.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}, error
    assert error["message"].startswith(message)
    assert error["type"] == ("server_error" if status >= 500 else "invalid_request_error")
    assert error["code"] == code


@pytest.mark.parametrize(
    ("method", "path", "status", "body"),
    [
        ("GET", "/v3/nothing", 404, {"error": "Not Found"}),
        ("POST", "/v2/health/ready", 405, {"error": "Method Not Allowed"}),
        ("POST", "/v2/models/twin/infer/extra", 404, {"error": "Not Found"}),
    ],
)
def test_unknown_routes_answer_kserves_error_shape(method: str, path: str, status: int, body: Any) -> None:
    resp = request(build(), method, path)
    assert resp.status_code == status, resp.text
    assert resp.json() == body
    if status == 405:
        assert resp.headers["Allow"] == "GET"


# -- 3. v2 tensors: the datatype and shape the twin reads, or a 400 -----------------------------------------
def _input(name: str, datatype: str, data: list[Any], shape: list[int] | None = None) -> dict[str, Any]:
    return {"name": name, "shape": shape or [len(data)], "datatype": datatype, "data": data}


@pytest.mark.parametrize(
    ("inputs", "error"),
    [
        ([_input("query", "FOO", ["hi"])], "input 'query': datatype 'FOO', expected BYTES"),
        ([_input("query", "FP32", ["hi"])], "input 'query': datatype 'FP32', expected BYTES"),
        ([_input("query", "BYTES", ["hi"], shape=[3])], "input 'query': shape [3] is not one element"),
        ([_input("query", "BYTES", ["hi"], shape=[0])], "input 'query': shape [0] is not one element"),
        (
            [_input("query", "BYTES", ["hi"]), _input("max_new_tokens", "FP32", [2])],
            "input 'max_new_tokens': datatype 'FP32', expected an integer datatype",
        ),
    ],
)
def test_a_v2_tensor_of_another_datatype_or_shape_is_a_logged_400(inputs: list[Any], error: str) -> None:
    ip = build()
    resp = request(ip, "POST", "/v2/models/twin/infer", json={"inputs": inputs})
    assert resp.status_code == 400, resp.text
    assert resp.json()["error"].startswith(error)
    assert [r["status"] for r in ip.pipeline.rows] == ["rejected"]
    for shape in ([1], [1, 1]):  # one element, however nested, is read
        ok = [_input("query", "BYTES", ["hi"], shape=shape), _input("max_new_tokens", "INT64", [2])]
        resp = request(ip, "POST", "/v2/models/twin/infer", json={"inputs": ok})
        assert resp.status_code == 200, resp.text


# -- 4. a streamed prompt over the model's context: a 400 before the stream, as without stream ---------------
@pytest.mark.parametrize("stream", [False, True])
def test_a_prompt_over_the_context_is_400_streamed_or_not(stream: bool) -> None:
    ip = build()
    resp = request(ip, "POST", CHAT, json=_chat(TOO_LONG, stream=stream))
    assert resp.status_code == 400, resp.text
    error = resp.json()["error"]
    assert "exceeds the model's context" in error["message"] and error["code"] == "input"
    assert [r["status"] for r in ip.pipeline.rows] == ["rejected"]  # logged once


# -- 5. OpenAI's content parts ----------------------------------------------------------------------------
def test_openai_text_content_parts_are_the_query() -> None:
    ip = build()
    parts = [{"type": "text", "text": "hi"}, {"type": "text", "text": "there"}]
    resp = request(ip, "POST", CHAT, json=_chat(parts))
    assert resp.status_code == 200, resp.text
    assert resp.json()["choices"][0]["message"]["content"] == "hello world"
    assert [r["query"] for r in ip.pipeline.rows] == ["hi\nthere"]
    image = [{"type": "text", "text": "hi"}, {"type": "image_url", "image_url": {"url": "https://x/y.png"}}]
    resp = request(ip, "POST", CHAT, json=_chat(image))
    assert resp.status_code == 400, resp.text
    assert resp.json()["error"]["message"].startswith("messages[0].content[1]: only text parts are supported")
