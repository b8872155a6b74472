"""`twin serve` follows the model registry without a restart (production, canary split sticky per
client, rollback to base), says which version answered, and frees the slot of a client that leaves."""

from __future__ import annotations

import json
import shutil
import socket
import time
from pathlib import Path
from typing import Any

import pytest
import requests

pytestmark = pytest.mark.slow

ADA = {"Authorization": "Bearer ada-test-key-0123456789abcdef"}
AUTHOR = "Ada Quillfeather"


def _ask(served: Any, client: str, n: int = 1) -> dict[str, Any]:
    resp = requests.post(
        f"{served.url}/v1/models/twin:predict",
        json={"instances": [{"query": "What is idempotency?", "max_new_tokens": n}]},
        headers={**ADA, "x-twin-client-id": client, "x-request-id": f"reg-{client}-{time.time_ns()}"},
        timeout=300,
    )
    assert resp.status_code == 200, resp.text
    return resp.json()["predictions"][0]


def _served_ids(served: Any) -> set[str]:
    listing = requests.get(f"{served.url}/openai/v1/models", headers=ADA, timeout=60).json()
    return {m["id"] for m in listing["data"]}


def _wait_for(cond: Any, what: str, timeout_s: float = 300) -> None:
    """Poll ``cond`` until true: the bound is for a machine loaded by other jobs (an idle one takes seconds)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if cond():
            return
        time.sleep(0.5)
    raise AssertionError(f"twin serve did not pick up: {what}")


def _model_folder(tmp: Path, llm_models_dir: Path, marker: str) -> Path:
    folder = tmp / marker
    shutil.copytree(llm_models_dir / "smollm2-135m-instruct", folder / "merged")
    (folder / "merged" / "MARKER.txt").write_text(marker)  # a distinct content hash per version
    return folder


def test_production_then_canary_then_back_to_base(served: Any, llm_models_dir: Path, tmp_path: Path) -> None:
    from twin_core.stores.registry import open_registry
    from twin_core.stores.warehouse import open_warehouse

    registry = open_registry(served.settings)
    base = _ask(served, "c-0")["model_version"]
    assert base.startswith("smollm2-135m-instruct")

    v1 = registry.register(AUTHOR, _model_folder(tmp_path, llm_models_dir, "v1"), {"base_model": "smollm2"})
    registry.set_stage(v1.ref, "production", reason="test")
    _wait_for(lambda: v1.ref in _served_ids(served), f"production {v1.ref}")
    pred = _ask(served, "c-0")
    assert (pred["model_version"], pred["served_stage"]) == (v1.ref, "production")

    v2 = registry.register(AUTHOR, _model_folder(tmp_path, llm_models_dir, "v2"), {"base_model": "smollm2"})
    registry.set_stage(v2.ref, "canary", reason="test", canary_percent=50)
    _wait_for(lambda: v2.ref in _served_ids(served), f"canary {v2.ref}")
    answered = {f"c-{i}": _ask(served, f"c-{i}")["model_version"] for i in range(12)}
    assert set(answered.values()) == {v1.ref, v2.ref}  # 50 %: both versions answer
    for client, version in list(answered.items())[:4]:  # sticky per client
        assert _ask(served, client)["model_version"] == version

    rows = [r for r in open_warehouse(served.settings).inference_logs(author=AUTHOR) if r.request_id.startswith("reg-")]
    assert {(r.model_version, r.served_stage) for r in rows} >= {(v1.ref, "production"), (v2.ref, "canary")}
    metrics = requests.get(f"{served.url}/metrics", timeout=60).text
    assert f'twin_model_requests_total{{model_version="{v2.ref}",stage="canary",status="ok"}}' in metrics

    registry.archive(v2.ref, "test done")
    registry.archive(v1.ref, "test done")
    _wait_for(lambda: v1.ref not in _served_ids(served), "archive")
    assert _ask(served, "c-0")["model_version"] == base


def _metric(served: Any, prefix: str) -> float:
    text = requests.get(f"{served.url}/metrics", timeout=60).text
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines() if line.startswith(prefix))


def test_a_client_that_disconnects_frees_its_slot(served: Any) -> None:
    cancelled = _metric(served, "twin_batch_cancelled_total")
    disconnected = _metric(served, 'twin_rejected_total{reason="disconnected"}')
    body = json.dumps({"instances": [{"query": "Tell me everything about idempotency.", "max_new_tokens": 512}]})
    with socket.create_connection(("127.0.0.1", int(served.url.rsplit(":", 1)[1]))) as sock:
        sock.sendall(
            (
                "POST /v1/models/twin:predict HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                f"Authorization: {ADA['Authorization']}\r\nContent-Length: {len(body)}\r\n\r\n{body}"
            ).encode()
        )
        _wait_for(lambda: _metric(served, "twin_batch_active") >= 1, "the long generation started")
    # the socket is closed: the request is cancelled, its batch row stops, its gateway slot is freed
    _wait_for(lambda: _metric(served, "twin_batch_cancelled_total") == cancelled + 1, "the cancel")
    _wait_for(lambda: _metric(served, "twin_batch_active") == 0, "the batch row freed")
    # the gateway counts the rejection and frees its slot after the request's failure is logged (a warehouse
    # write on another thread), which can end after the decode thread has dropped the row
    rejections = 'twin_rejected_total{reason="disconnected"}'
    _wait_for(lambda: _metric(served, rejections) == disconnected + 1, "the rejection")
    _wait_for(lambda: _metric(served, "twin_requests_in_flight") == 0, "the gateway slot freed")
    assert _ask(served, "after-disconnect")["model_version"]
