"""The `twin serve` app in-process (tests/serving/inproc.py: real routes, gateway, metrics and predictor,
fake pipeline and LLM): malformed text, unexpected errors, failures mid-stream, departing clients, the
hidden predictor, bodies over the limit, unserved KServe routes, the OpenAI route's fields, malformed v2
bodies (400, not FastAPI's 422) and the log lines of client errors (one line) and server errors (a traceback)."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator
from typing import Any

import pytest

from twin_core.errors import InputError

from .inproc import (
    ADA_KEY,
    BASE_VERSION,
    BOOM,
    DOWN,
    HEADERS,
    FakeLLM,
    build,
    build_predictor_only,
    request,
    sample,
)


def _chat(**fields: Any) -> dict[str, Any]:
    return {"model": "twin", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 3, **fields}


def _v2(query: str) -> dict[str, Any]:
    return {"inputs": [{"name": "query", "shape": [1], "datatype": "BYTES", "data": [query]}]}


def _with_lone_surrogate(body: Any) -> str:
    """``body`` as JSON text whose "hi" holds a lone surrogate: Python's json takes it, UTF-8 cannot hold it."""
    return json.dumps(body).replace('"hi"', '"hi \\ud800"')


# -- 1. text that is not valid Unicode ------------------------------------------------------------
@pytest.mark.parametrize("stream", [False, True])
def test_a_lone_surrogate_in_the_openai_query_is_400(stream: bool) -> None:
    ip = build()
    raw = _with_lone_surrogate(_chat(stream=stream))
    resp = request(ip, "POST", "/openai/v1/chat/completions", content=raw)
    assert resp.status_code == 400, resp.text
    assert "messages[0].content is not valid Unicode" in resp.json()["error"]["message"]  # OpenAI's error shape


def test_a_lone_surrogate_in_v1_and_v2_is_400_and_logged() -> None:
    ip = build()
    raw = _with_lone_surrogate({"instances": [{"query": "hi", "max_new_tokens": 3}]})
    plain = {**HEADERS, "Content-Type": "text/plain"}  # KServe hands the raw body to the transformer
    resp = request(ip, "POST", "/v1/models/twin:predict", content=raw, headers=plain)
    assert resp.status_code == 400, resp.text
    assert "instances[0].query is not valid Unicode" in resp.json()["error"]
    assert [r["status"] for r in ip.pipeline.rows] == ["rejected"]  # the request log has it
    resp = request(ip, "POST", "/v2/models/twin/infer", content=_with_lone_surrogate(_v2("hi")))
    assert resp.status_code == 400, resp.text
    assert "input 'query' is not valid Unicode" in resp.json()["error"]


def test_a_lone_surrogate_in_a_json_v1_body_is_the_twins_400_and_logged() -> None:
    """With Content-Type application/json KServe parses the v1 body (orjson), which refuses the surrogate
    before the transformer runs: the answer is the twin's own message, not the parser's."""
    ip = build()
    raw = _with_lone_surrogate({"instances": [{"query": "hi", "max_new_tokens": 3}]})
    resp = request(ip, "POST", "/v1/models/twin:predict", content=raw)  # HEADERS: application/json
    assert resp.status_code == 400, resp.text
    error = resp.json()["error"]
    at = raw.index("\\ud800")
    assert error == f"request body is not valid Unicode (it holds a lone surrogate): line 1 column {at + 1} (char {at})"
    assert [(r["status"], str(r["error"])) for r in ip.pipeline.rows] == [("rejected", error)]  # the request log has it


def test_the_predictor_refuses_a_lone_surrogate_in_its_messages() -> None:
    ip = build()
    payload = {"instances": [{"messages": [{"role": "user", "content": "hi \ud800"}], "max_new_tokens": 2}]}
    with pytest.raises(InputError, match=r"instances\[0\]\.messages\[0\]\.content is not valid Unicode"):
        asyncio.run(ip.predictor.predict(payload))


# -- 2. unexpected errors -------------------------------------------------------------------------
def test_an_unexpected_error_is_a_counted_500_with_one_traceback(caplog: pytest.LogCaptureFixture) -> None:
    ip = build()
    before = sample("twin_serving_requests_total", code="500")
    with caplog.at_level(logging.ERROR):
        resp = request(ip, "POST", "/v1/models/twin:predict", json={"instances": [{"query": BOOM}]})
    assert resp.status_code == 500
    assert resp.json() == {"error": "RuntimeError : the pipeline broke"}
    assert sample("twin_serving_requests_total", code="500") == before + 1  # what the 5xx alert reads
    assert len([r for r in caplog.records if r.exc_info]) == 1


# -- 3. a generation that fails mid-stream -------------------------------------------------------
def test_a_stream_whose_generation_fails_ends_with_an_error_event_and_done(caplog: pytest.LogCaptureFixture) -> None:
    ip = build(serve_faults={BASE_VERSION: 1.0})  # every generation of the base model fails
    before = sample("twin_model_requests_total", model_version=BASE_VERSION, stage="base", status="error")
    with caplog.at_level(logging.WARNING, logger="twin_core.serving.app"):
        resp = request(ip, "POST", "/openai/v1/chat/completions", json=_chat(stream=True))
    assert resp.status_code == 200  # the headers went out before generation
    events = [line.removeprefix("data: ") for line in resp.text.splitlines() if line.startswith("data: ")]
    assert json.loads(events[0])["choices"][0]["delta"]["role"] == "assistant"
    error = json.loads(events[1])["error"]
    assert error["type"] == "server_error" and "injected fault" in error["message"]
    assert events[2:] == ["[DONE]"]
    assert sample("twin_model_requests_total", model_version=BASE_VERSION, stage="base", status="error") == before + 1
    assert [(r["status"], r["model_version"]) for r in ip.pipeline.rows] == [("error", BASE_VERSION)]
    assert len([r for r in caplog.records if r.name == "twin_core.serving.app"]) == 1


# -- 4. a client that leaves while sending its body -----------------------------------------------
def test_a_client_leaving_mid_body_is_a_departure_not_a_500(caplog: pytest.LogCaptureFixture) -> None:
    ip = build()
    messages = [
        {"type": "http.request", "body": b'{"instances": [{"query": "hi"', "more_body": True},
        {"type": "http.disconnect"},
    ]
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return messages.pop(0) if messages else {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = {
        "type": "http",
        "method": "POST",
        "path": "/v1/models/twin:predict",
        "headers": [(b"authorization", f"Bearer {ADA_KEY}".encode()), (b"content-type", b"application/json")],
        "query_string": b"",
        "client": ("127.0.0.1", 5000),
    }
    before = sample("twin_rejected_total", reason="disconnected")
    with caplog.at_level(logging.INFO):
        asyncio.run(ip.app(scope, receive, send))
    assert sent == []  # nobody to answer
    assert sample("twin_rejected_total", reason="disconnected") == before + 1
    assert not [r for r in caplog.records if r.exc_info]


# -- 5. the in-process predictor is not a public model --------------------------------------------
@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("POST", "/v1/models/twin-llm:predict"),
        ("POST", "/v2/models/twin-llm/infer"),
        ("GET", "/v1/models/twin-llm"),
        ("GET", "/v2/models/twin-llm"),
        ("GET", "/v2/models/twin-llm/ready"),
    ],
)
def test_every_route_naming_the_in_process_predictor_is_404(method: str, path: str) -> None:
    ip = build()
    body = {"instances": [{"messages": [{"role": "user", "content": "Say hi"}], "max_new_tokens": 4}]}
    resp = request(ip, method, path, **({"json": body} if method == "POST" else {}))
    assert resp.status_code == 404, resp.text
    # the transformer still reaches it, in-process
    ok = request(ip, "POST", "/v1/models/twin:predict", json={"instances": [{"query": "hi", "max_new_tokens": 2}]})
    assert ok.status_code == 200 and ok.json()["predictions"][0]["answer"] == "hello world"


def test_a_predictor_container_still_answers_under_the_public_name() -> None:
    from twin_core.serving.batching import Batcher
    from twin_core.serving.pool import AuthorRoute, ServedModel

    ip = build_predictor_only()  # `--component predictor` on a cluster: the predictor is the model `twin`
    bob_llm = FakeLLM()
    bob_llm.model_version = "bob-marlowe/v0001"
    bob = ServedModel(bob_llm.model_version, "production", bob_llm, Batcher(bob_llm, window_ms=0))
    ip.predictor.pool.routes["Bob Marlowe"] = AuthorRoute("Bob Marlowe", "bob-marlowe", production=bob)
    instance = {"messages": [{"role": "user", "content": "Say hi"}], "max_new_tokens": 4, "author": "Bob Marlowe"}
    resp = request(ip, "POST", "/v1/models/twin:predict", json={"instances": [instance]})
    assert resp.status_code == 200, resp.text
    # Ada's key gets Ada's model (the base one here), whatever author the body names
    assert resp.json()["predictions"][0]["model_version"] == BASE_VERSION
    assert request(ip, "GET", "/v2/models/twin/ready").status_code == 200


# -- 6. bodies over the limit without Content-Length ----------------------------------------------
@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/v1/models/twin:predict", {"instances": [{"query": "a" * 5000}]}),
        ("/openai/v1/chat/completions", {"messages": [{"role": "user", "content": "a" * 5000}]}),
        (
            "/v2/models/twin/infer",
            {"inputs": [{"name": "query", "shape": [1], "datatype": "BYTES", "data": ["a" * 5000]}]},
        ),
    ],
)
def test_a_chunked_body_over_the_limit_is_413(caplog: pytest.LogCaptureFixture, path: str, body: Any) -> None:
    ip = build(serve_max_body_bytes=1000)
    raw = json.dumps(body).encode()

    async def chunks() -> AsyncIterator[bytes]:  # no Content-Length: the limit is found while reading
        for i in range(0, len(raw), 500):
            yield raw[i : i + 500]

    before = sample("twin_rejected_total", reason="too_large")
    with caplog.at_level(logging.INFO):
        resp = request(ip, "POST", path, content=chunks())
    assert resp.status_code == 413, resp.text
    error = resp.json()["error"]
    if path.startswith("/openai/"):  # OpenAI's error object on its route, KServe's {"error": text} elsewhere
        assert (error["code"], error["type"]) == ("request_too_large", "invalid_request_error")
        error = error["message"]
    assert error == "request body above 1000 bytes (TWIN_SERVE_MAX_BODY_BYTES)"
    assert sample("twin_rejected_total", reason="too_large") == before + 1
    assert not [r for r in caplog.records if r.exc_info]  # a client's mistake: no traceback
    assert ip.pipeline.rows == []  # counted as too_large, not as a request the transformer refused


# -- 7. KServe routes the twin does not serve: 404, not 501 ---------------------------------------
@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("POST", "/v2/models/twin/versions/v1/infer"),
        ("GET", "/v2/models/twin/versions/x"),
        ("GET", "/v2/models/twin/versions/x/ready"),
        ("POST", "/v1/models/twin:explain"),
    ],
)
def test_unserved_kserve_routes_are_404(method: str, path: str) -> None:
    body = {"instances": [{"query": "hi"}]}
    resp = request(build(), method, path, **({"json": body} if method == "POST" else {}))
    assert resp.status_code == 404, resp.text
    assert resp.json()["error"].startswith("not served")


# -- 8. the OpenAI route's fields -----------------------------------------------------------------
def test_openai_model_must_be_listed_for_the_key() -> None:
    ip = build()
    listed = [m["id"] for m in request(ip, "GET", "/openai/v1/models").json()["data"]]
    assert listed == ["twin", BASE_VERSION]
    for model in listed:
        resp = request(ip, "POST", "/openai/v1/chat/completions", json=_chat(model=model))
        assert resp.status_code == 200, resp.text
    for model in ("gpt-99", "twin-llm"):
        resp = request(ip, "POST", "/openai/v1/chat/completions", json=_chat(model=model))
        assert resp.status_code == 404, resp.text
        assert resp.json()["error"]["code"] == "model_not_found"


@pytest.mark.parametrize("fields", [{"stream": "no"}, {"stream": 1}, {"stream_options": {"include_usage": "yes"}}])
def test_openai_flags_must_be_booleans(fields: dict[str, Any]) -> None:
    resp = request(build(), "POST", "/openai/v1/chat/completions", json=_chat(**fields))
    assert resp.status_code == 400, resp.text
    assert "expected true or false" in resp.json()["error"]["message"]


def test_openai_null_max_completion_tokens_leaves_max_tokens() -> None:
    ip = build()
    body = _chat(max_completion_tokens=None, max_tokens=2)  # the fake answers 2 tokens: "length" iff the cap is 2
    resp = request(ip, "POST", "/openai/v1/chat/completions", json=body)
    assert resp.status_code == 200, resp.text
    assert resp.json()["choices"][0]["finish_reason"] == "length"


# -- 9. v2 bodies that are not JSON ---------------------------------------------------------------
def test_v2_malformed_json_is_400_with_an_error() -> None:
    ip = build()
    resp = request(ip, "POST", "/v2/models/twin/infer", content=b'{"inputs": [')
    assert resp.status_code == 400, resp.text
    assert resp.json()["error"].startswith("request body is not valid JSON")
    assert [r["status"] for r in ip.pipeline.rows] == ["rejected"]  # as a v1 body that is not JSON


# -- 10. v2 bodies of the wrong shape: 400 naming the field, not FastAPI's 422 ---------------------
@pytest.mark.parametrize(
    ("body", "error"),
    [
        ({"inputs": "x"}, "invalid request body: inputs: Input should be a valid list"),
        ({}, "invalid request body: missing field 'inputs'"),
        (
            {"inputs": [{"name": "query", "datatype": "BYTES", "data": ["hi"]}]},
            "invalid request body: missing field 'inputs[0].shape'",
        ),
        ([1, 2], "invalid request body: expected a JSON object"),
    ],
)
def test_a_v2_body_of_the_wrong_shape_is_a_counted_and_logged_400(body: Any, error: str) -> None:
    ip = build()
    before = sample("twin_serving_requests_total", code="400")
    rejected = sample("twin_requests_total", status="rejected")
    resp = request(ip, "POST", "/v2/models/twin/infer", json=body)
    assert resp.status_code == 400, resp.text
    assert resp.json() == {"error": error}
    assert sample("twin_serving_requests_total", code="400") == before + 1
    assert sample("twin_requests_total", status="rejected") == rejected + 1
    assert [(r["status"], str(r["error"])) for r in ip.pipeline.rows] == [("rejected", error)]


def test_a_wrong_shape_for_another_model_or_a_predictor_container_is_400_without_a_log_row() -> None:
    ip = build()
    resp = request(ip, "POST", "/v2/models/nope/infer", json={"inputs": "x"})
    assert resp.status_code == 400 and resp.json() == {
        "error": "invalid request body: inputs: Input should be a valid list"
    }
    assert ip.pipeline.rows == []  # not a request to the twin
    resp = request(build_predictor_only(), "POST", "/v2/models/twin/infer", json={"inputs": "x"})
    assert resp.status_code == 400, resp.text  # no transformer, no request log


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/v1/models/twin:predict", b"{not json"),  # KServe's parser: before the transformer
        ("/openai/v1/chat/completions", b"{not json"),  # the OpenAI route's parser
        ("/v1/models/twin:predict", b'{"instances": "x"}'),  # the transformer's own check
        ("/openai/v1/chat/completions", b'{"messages": "x"}'),  # the OpenAI route's check
        ("/openai/v1/chat/completions", b'{"messages": [{"role": "user", "content": ""}]}'),  # the transformer's
    ],
)
def test_v1_and_openai_400s_are_counted_and_logged_once(path: str, body: bytes) -> None:
    ip = build()
    before = sample("twin_serving_requests_total", code="400")
    resp = request(ip, "POST", path, content=body)
    assert resp.status_code == 400, resp.text
    assert sample("twin_serving_requests_total", code="400") == before + 1
    assert [r["status"] for r in ip.pipeline.rows] == ["rejected"]


# -- 11. the log: a client's error is one line, a server's error keeps its traceback --------------
@pytest.mark.parametrize(
    ("method", "path", "body", "line"),
    [
        (
            "POST",
            "/v2/models/nope/infer",
            _v2("hi"),
            "POST /v2/models/nope/infer -> 404: Model with name nope does not exist.",
        ),
        ("POST", "/v1/models/nope:predict", {"instances": [{"query": "hi"}]}, "POST /v1/models/nope:predict -> 404: "),
        (
            "GET",
            "/v2/models/nope/ready",
            None,
            "GET /v2/models/nope/ready -> 404: Model with name nope does not exist.",
        ),
        ("GET", "/v1/models/a%0Ab", None, "GET /v1/models/a\\nb -> 404: Model with name a\\nb does not exist."),
        (
            "POST",
            "/v1/models/twin:predict",
            b"{not json",
            "POST /v1/models/twin:predict -> 400: Unrecognized request format",
        ),
        (
            "POST",
            "/v1/models/twin:predict",
            {"instances": "x"},
            "POST /v1/models/twin:predict -> 400: 'instances' must be",
        ),
        (
            "POST",
            "/v2/models/twin/infer",
            {"inputs": "x"},
            "POST /v2/models/twin/infer -> 400: invalid request body: inputs:",
        ),
        ("POST", "/openai/v1/chat/completions", {"messages": "x"}, "POST /openai/v1/chat/completions -> 400: expected"),
    ],
)
def test_a_client_error_is_one_log_line_without_a_traceback(
    caplog: pytest.LogCaptureFixture, method: str, path: str, body: Any, line: str
) -> None:
    ip = build()
    kw = {"content": body} if isinstance(body, bytes) else ({"json": body} if body is not None else {})
    with caplog.at_level(logging.DEBUG):
        resp = request(ip, method, path, **kw)
    assert 400 <= resp.status_code < 500, resp.text
    assert not [r for r in caplog.records if r.exc_info or r.levelno >= logging.WARNING]
    assert "Traceback" not in caplog.text
    lines = [r for r in caplog.records if r.name == "twin_core.serving.http_errors"]
    assert len(lines) == 1 and lines[0].levelno == logging.INFO
    assert lines[0].getMessage().startswith(line) and "\n" not in lines[0].getMessage()


def test_a_server_error_keeps_its_traceback_once(caplog: pytest.LogCaptureFixture) -> None:
    ip = build()
    with caplog.at_level(logging.DEBUG):
        resp = request(ip, "POST", "/v1/models/twin:predict", json={"instances": [{"query": BOOM}]})
    assert resp.status_code == 500, resp.text
    tracebacks = [r for r in caplog.records if r.exc_info]
    assert len(tracebacks) == 1 and tracebacks[0].levelno == logging.ERROR
    assert "POST /v1/models/twin:predict" in tracebacks[0].getMessage()
    assert caplog.text.count("Traceback") == 1


def test_a_store_down_is_one_error_line_per_request(caplog: pytest.LogCaptureFixture) -> None:
    ip = build()
    with caplog.at_level(logging.DEBUG):
        resp = request(ip, "POST", "/v1/models/twin:predict", json={"instances": [{"query": DOWN}]})
    assert resp.status_code == 503, resp.text
    assert not [r for r in caplog.records if r.exc_info] and "Traceback" not in caplog.text
    lines = [r for r in caplog.records if r.name == "twin_core.serving.http_errors"]
    assert len(lines) == 1 and lines[0].levelno == logging.ERROR
    assert lines[0].getMessage() == f"POST /v1/models/twin:predict -> 503: {resp.json()['error']}"


def test_a_backend_down_503_says_retry_after_as_configured() -> None:
    ip = build(serve_retry_after_s=17)  # not the default (5)
    resp = request(ip, "POST", "/v1/models/twin:predict", json={"instances": [{"query": DOWN}]})
    assert resp.status_code == 503, resp.text
    assert resp.headers["Retry-After"] == "17"


def test_kserves_not_ready_is_one_error_line(caplog: pytest.LogCaptureFixture) -> None:
    ip = build()
    ip.transformer.ready = False  # KServe answers ModelNotReady: 503
    with caplog.at_level(logging.DEBUG):
        resp = request(ip, "POST", "/v1/models/twin:predict", json={"instances": [{"query": "hi"}]})
    assert resp.status_code == 503, resp.text
    assert resp.json() == {"error": "Model with name twin is not ready."}
    assert not [r for r in caplog.records if r.exc_info] and "Traceback" not in caplog.text
    lines = [r.getMessage() for r in caplog.records if r.name == "twin_core.serving.http_errors"]
    assert lines == ["POST /v1/models/twin:predict -> 503: Model with name twin is not ready."]
