"""Demo stage ``serve.ask``: start `twin serve` on 127.0.0.1, ask a question over HTTP (and a few more at
once, as other users would), print the answer with its sources, stop the server cleanly (SIGTERM,
graceful shutdown)."""

from __future__ import annotations

import gc
import json
import logging
import os
import signal
import socket
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import requests

from twin_core.errors import BackendUnavailable

log = logging.getLogger(__name__)

DEFAULT_QUESTION = "Why do randomly generated record IDs turn an upsert into duplicate inserts when a job is rerun?"
READY_TIMEOUT_S = 600  # the first start converts the packaged GGUF once (~30 s), then loads in seconds


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_server(port: int, env: dict[str, str] | None = None, log_path: Path | None = None) -> subprocess.Popen:
    twin = Path(sys.executable).with_name("twin")
    out = open(log_path, "w") if log_path else subprocess.DEVNULL  # noqa: SIM115 - lives as long as the server
    return subprocess.Popen(
        [str(twin), "serve", "--host", "127.0.0.1", "--port", str(port)],
        env={**os.environ, **(env or {})},
        stdout=subprocess.PIPE,
        stderr=out,
        text=True,
    )


def wait_ready(proc: subprocess.Popen, port: int, timeout_s: float = READY_TIMEOUT_S) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise BackendUnavailable(f"twin serve exited with code {proc.returncode} before it was ready")
        try:
            if requests.get(f"http://127.0.0.1:{port}/v2/health/ready", timeout=2).status_code == 200:
                return
        except requests.RequestException:
            pass
        time.sleep(0.5)
    raise BackendUnavailable(f"twin serve not ready after {timeout_s:.0f} s")


def stop_server(proc: subprocess.Popen, timeout_s: float = 30) -> dict[str, Any]:
    """SIGTERM, then wait for the graceful shutdown; returns the server's own result line."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
    try:
        stdout, _ = proc.communicate(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        proc.kill()
        stdout, _ = proc.communicate()
    lines = [ln for ln in (stdout or "").splitlines() if ln.strip()]
    try:
        result = json.loads(lines[-1]) if lines else {}
    except json.JSONDecodeError:
        result = {}
    return {"exit_code": proc.returncode, "result": result}


MORE_USERS = 5  # further questions asked at once (batched by the server), so monitoring has traffic to check


def _questions(sample: Path) -> list[str]:
    queries = sample / "queries.jsonl"
    if queries.is_file():
        found = [json.loads(line)["query"] for line in queries.read_text().splitlines() if line.strip()]
        if found:
            return found
    return [DEFAULT_QUESTION]


def stage(sample: Path) -> dict[str, Any]:
    from twin_core.serving.auth import read_local_key
    from twin_core.settings import get_settings

    settings = get_settings()
    gc.collect()  # drop any vector-store client an earlier stage left: local Qdrant is one process at a time
    port = free_port()
    log_path = settings.home / "serving" / "demo-server.log"
    log_path.parent.mkdir(parents=True, exist_ok=True)
    proc = start_server(port, log_path=log_path)
    try:
        wait_ready(proc, port)
        key = (
            None
            if settings.serve.auth_disabled
            else (settings.serve.api_keys and next(iter(json.loads(settings.serve.api_keys.get_secret_value()))))
            or read_local_key(settings)
        )
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        url = f"http://127.0.0.1:{port}/v1/models/{settings.serve.model_name}:predict"

        def ask(query: str, max_new_tokens: int) -> requests.Response:
            body = {"instances": [{"query": query, "max_new_tokens": max_new_tokens}]}
            return requests.post(url, json=body, headers=headers, timeout=settings.serve.request_timeout_s + 10)

        question, *others = _questions(sample)
        started = time.perf_counter()
        resp = ask(question, 48)
        seconds = time.perf_counter() - started
        if resp.status_code != 200:
            raise BackendUnavailable(f"twin serve answered HTTP {resp.status_code}: {resp.text[:300]}")
        pred = resp.json()["predictions"][0]
        with ThreadPoolExecutor(MORE_USERS) as pool:
            more = list(pool.map(lambda q: ask(q, 16).status_code, others[:MORE_USERS]))
    finally:
        stopped = stop_server(proc)
    print(f"\nQ: {question}\nA: {pred['answer']}\nSources:", flush=True)
    for src in pred["sources"]:
        print(f"  - {src['link']} ({src['category']}, score {src['score']})", flush=True)
    return {
        "question": question,
        "answer": pred["answer"],
        "sources": [s["link"] for s in pred["sources"]],
        "model_version": pred["model_version"],
        "http_seconds": round(seconds, 2),
        "more_requests": {"sent": len(more), "ok": more.count(200)},
        "server_exit_code": stopped["exit_code"],
        "server_log": str(log_path),
    }
