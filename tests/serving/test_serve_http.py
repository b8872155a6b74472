"""`twin serve` end to end over HTTP with the real tiny model on the embedded stores."""

from __future__ import annotations

import json
import uuid
from typing import Any

import pytest
import requests
from support.rag_home import SECRET

pytestmark = pytest.mark.slow

ADA = {"Authorization": "Bearer ada-test-key-0123456789abcdef"}
BOB = {"Authorization": "Bearer bob-test-key-0123456789abcdef"}


def _predict(served: Any, body: Any, headers: dict[str, str] | None = None, **kw: Any) -> requests.Response:
    return requests.post(f"{served.url}/v1/models/twin:predict", json=body, headers=headers, timeout=300, **kw)


def test_health_and_readiness(served: Any) -> None:
    assert requests.get(f"{served.url}/v2/health/live", timeout=60).json() == {"live": True}
    assert requests.get(f"{served.url}/v2/health/ready", timeout=60).json() == {"ready": True}
    assert requests.get(f"{served.url}/v1/models/twin", timeout=60).json()["ready"] is True


def test_v1_predict(served: Any) -> None:
    resp = _predict(
        served,
        {
            "instances": [
                {
                    "query": "Why do random record IDs turn an upsert into duplicate inserts when a job is rerun?",
                    "max_new_tokens": 4,
                }
            ]
        },
        ADA,
    )
    assert resp.status_code == 200, resp.text
    pred = resp.json()["predictions"][0]
    assert isinstance(pred["answer"], str)
    assert pred["model_version"].startswith("smollm2-135m-instruct")
    assert pred["sources"]
    assert all({"link", "score"} <= set(s) for s in pred["sources"])
    assert pred["usage"]["completion_tokens"] <= 4
    assert all("bob.example" not in s["link"] for s in pred["sources"])


def test_v2_infer(served: Any) -> None:
    body = {
        "inputs": [
            {"name": "query", "shape": [1], "datatype": "BYTES", "data": ["How do I tune HNSW recall?"]},
            {"name": "max_new_tokens", "shape": [1], "datatype": "INT32", "data": [3]},
        ]
    }
    resp = requests.post(f"{served.url}/v2/models/twin/infer", json=body, headers=ADA, timeout=300)
    assert resp.status_code == 200, resp.text
    outputs = {o["name"]: o["data"][0] for o in resp.json()["outputs"]}
    assert set(outputs) == {"answer", "sources", "model_version"}
    assert json.loads(outputs["sources"])[0]["link"].startswith("https://")


def test_openai_chat_completions(served: Any) -> None:
    body = {"model": "twin", "messages": [{"role": "user", "content": "What is chunk overlap for?"}], "max_tokens": 3}
    resp = requests.post(f"{served.url}/openai/v1/chat/completions", json=body, headers=ADA, timeout=300)
    assert resp.status_code == 200, resp.text
    data = resp.json()
    assert data["object"] == "chat.completion"
    assert data["choices"][0]["message"]["role"] == "assistant"
    assert data["usage"]["completion_tokens"] <= 3
    assert data["sources"]


def test_author_isolation(served: Any) -> None:
    # naming another author: 403
    assert _predict(served, {"instances": [{"query": "x", "author": "Bob Marlowe"}]}, ADA).status_code == 403
    assert _predict(served, {"instances": [{"query": "x", "author": "Carol Nobody"}]}, ADA).status_code == 403
    # forged identity (header, payload fields, the query naming Bob): ignored, Ada's content only
    forged = {**ADA, "x-twin-author": "Bob Marlowe"}
    body = {
        "instances": [
            {"query": "Bob Marlowe secret token", "author_id": "bob", "user": "Bob Marlowe", "max_new_tokens": 2}
        ]
    }
    resp = _predict(served, body, forged)
    assert resp.status_code == 200, resp.text
    pred = resp.json()["predictions"][0]
    assert pred["author"] == "Ada Quillfeather"
    assert all("bob.example" not in s["link"] for s in pred["sources"])
    # Bob's own key sees Bob's content
    resp = _predict(served, {"instances": [{"query": "secret token", "max_new_tokens": 2}]}, BOB)
    assert resp.status_code == 200
    assert any("bob.example" in s["link"] for s in resp.json()["predictions"][0]["sources"])
    assert SECRET not in json.dumps(pred)


@pytest.mark.parametrize(
    "headers", [None, {"Authorization": "Bearer wrong-key-0123456789"}, {"Authorization": "Basic x"}]
)
def test_missing_or_invalid_key_is_401(served: Any, headers: Any) -> None:
    resp = _predict(served, {"instances": [{"query": "hi"}]}, headers)
    assert resp.status_code == 401
    assert resp.headers["WWW-Authenticate"] == "Bearer"
    assert "ada-test-key" not in resp.text


@pytest.mark.parametrize(
    ("body", "status"),
    [
        ({"instances": [{"query": ""}]}, 400),
        ({"instances": [{"query": "   "}]}, 400),
        ({"instances": [{"query": 42}]}, 400),
        ({"instances": [{"no_query": "x"}]}, 400),
        ({"instances": "x"}, 400),
        ({"instances": []}, 400),
        ({}, 400),
        ([1, 2], 400),
        ({"instances": [{"query": "hi", "max_new_tokens": -1}]}, 400),
        ({"instances": [{"query": "hi", "max_new_tokens": 10**9}]}, 400),
        ({"instances": [{"query": "hi", "max_new_tokens": "12"}]}, 400),
        ({"instances": [{"query": "hi", "author": 7}]}, 400),
        ({"instances": [{"query": "q" * 5000}]}, 400),
    ],
)
def test_malformed_requests_are_4xx(served: Any, body: Any, status: int) -> None:
    resp = _predict(served, body, ADA)
    assert resp.status_code == status, resp.text
    assert "error" in resp.json()


def test_non_json_and_huge_bodies(served: Any) -> None:
    url = f"{served.url}/v1/models/twin:predict"
    resp = requests.post(url, data=b"{not json", headers={**ADA, "Content-Type": "application/json"}, timeout=30)
    assert resp.status_code == 400
    resp = requests.post(url, data=b"\xff\xfe garbage", headers=ADA, timeout=30)
    assert resp.status_code == 400
    huge = {"instances": [{"query": "a" * 1_000_000}]}
    assert _predict(served, huge, ADA).status_code == 413
    resp = requests.post(f"{served.url}/v2/models/twin/infer", json={"inputs": "nope"}, headers=ADA, timeout=30)
    assert resp.status_code == 400  # the v2 body does not validate (inputs must be a list)
    assert resp.json() == {"error": "invalid request body: inputs: Input should be a valid list"}


def _metrics(served: Any) -> dict[tuple[str, frozenset], float]:
    """Every sample of /metrics: (name, labels) -> value."""
    from prometheus_client.parser import text_string_to_metric_families

    text = requests.get(f"{served.url}/metrics", timeout=60).text
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def test_request_log_row_and_metrics(served: Any) -> None:
    before = _metrics(served)
    rid = f"test-request-log-{uuid.uuid4().hex}"  # this request's row only, on a server shared by the package
    resp = _predict(
        served, {"instances": [{"query": "What is idempotency?", "max_new_tokens": 2}]}, {**ADA, "x-request-id": rid}
    )
    assert resp.status_code == 200
    refused = _predict(served, {"instances": [{"query": "hi"}]}, {"Authorization": "Bearer wrong-key-0123456789"})
    assert refused.status_code == 401
    after = _metrics(served)
    from twin_core.stores.warehouse import open_warehouse

    rows = [r for r in open_warehouse(served.settings).inference_logs() if r.request_id == rid]
    assert len(rows) == 1
    row = rows[0]
    assert row.status == "ok"
    assert row.transport == "http"
    assert row.query == "What is idempotency?"
    assert row.author == "Ada Quillfeather"
    assert row.retrieved
    assert row.prompt_tokens > 0
    assert row.completion_tokens <= 2
    assert row.latency_ms.retrieval is not None
    assert row.latency_ms.total >= row.latency_ms.generation
    assert "ada-test-key" not in row.model_dump_json()

    def delta(name: str, **labels: str) -> float:
        key = (name, frozenset(labels.items()))
        assert key in after, f"{name} {labels} not in /metrics"
        return after[key] - before.get(key, 0.0)

    # this test's two requests, and nothing else, between the two scrapes (/metrics itself is not counted)
    assert {
        "answered": delta("twin_requests_total", status="ok"),
        "refused": delta("twin_rejected_total", reason="unauthorized"),
        "retrievals": delta("twin_retrieval_seconds_count"),
        "generations": delta("twin_generation_seconds_count"),
        "log failures": delta("twin_request_log_failures_total"),
        # the series the chart's PrometheusRule alerts on, by HTTP code (gateway refusals included)
        "HTTP 200": delta("twin_serving_requests_total", code="200"),
        "HTTP 401": delta("twin_serving_requests_total", code="401"),
    } == {
        "answered": 1,
        "refused": 1,
        "retrievals": 1,
        "generations": 1,
        "log failures": 0,
        "HTTP 200": 1,
        "HTTP 401": 1,
    }
