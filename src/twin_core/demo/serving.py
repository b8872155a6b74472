"""Demo stage ``serve.ask``: start `twin serve` on 127.0.0.1, ask a question over HTTP (and a few more at
once, as other users would), print the answer with its sources, stop the server cleanly (SIGTERM,
graceful shutdown)."""

from __future__ import annotations

import gc
import json
import logging
import os
import select
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


def listening_socket(host: str = "127.0.0.1") -> socket.socket:
    """A socket listening on a free port of ``host``, for `twin serve --fd`. The port is this process's from the
    bind on: a port found free, let go and bound again by the server once its models are loaded (seconds later)
    could meanwhile be taken by another process, whose server the readiness check would then talk to."""
    sock = socket.socket()
    try:
        sock.bind((host, 0))
        sock.listen(128)
    except OSError:
        sock.close()
        raise
    return sock


def start_server(
    sock: socket.socket, env: dict[str, str] | None = None, log_path: Path | None = None
) -> subprocess.Popen:
    """`twin serve` on ``sock`` (see ``listening_socket``), inherited as ``--fd``. Keep ``sock`` open until the
    server has stopped: the port stays taken (by this process) until then."""
    twin = Path(sys.executable).with_name("twin")
    out = open(log_path, "w") if log_path else subprocess.DEVNULL  # noqa: SIM115 - lives as long as the server
    fd = sock.fileno()
    return subprocess.Popen(
        [str(twin), "serve", "--fd", str(fd)],
        env={**os.environ, **(env or {})},
        stdout=subprocess.PIPE,
        stderr=out,
        text=True,
        pass_fds=(fd,),
    )


def _check_running(proc: subprocess.Popen, deadline: float, timeout_s: float) -> None:
    if proc.poll() is not None:
        raise BackendUnavailable(f"twin serve exited with code {proc.returncode} before it was ready")
    if time.monotonic() >= deadline:
        raise BackendUnavailable(f"twin serve not ready after {timeout_s:.0f} s")


def wait_ready(proc: subprocess.Popen, port: int, timeout_s: float = READY_TIMEOUT_S) -> None:
    """Until ``GET /v2/health/ready`` answers 200. On a socket listening before the server runs (``--fd``), the
    kernel accepts the connection at once and the request waits in its queue while the models load: each request
    is waited for until answered (the process watched meanwhile), never given up and sent again, so the server
    does not find a pile of abandoned requests when it starts."""
    deadline = time.monotonic() + timeout_s
    while True:
        _check_running(proc, deadline, timeout_s)
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=30) as conn:
                conn.sendall(b"GET /v2/health/ready HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
                while not select.select([conn], [], [], 0.5)[0]:
                    _check_running(proc, deadline, timeout_s)
                status = conn.makefile("rb").readline().split()  # b"HTTP/1.1 200 OK"
            if status[1:2] == [b"200"]:
                return
        except OSError:  # refused (nothing listens yet), reset, or a status line that never came
            pass
        time.sleep(0.5)


def stop_server(proc: subprocess.Popen, timeout_s: float = 120) -> dict[str, Any]:
    """SIGTERM, then wait for the graceful shutdown (SIGKILL after ``timeout_s``: ample for the drain and the
    models' teardown on a loaded machine); returns the server's exit code and its own result line."""
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
    log_path = settings.home / "serving" / "demo-server.log"
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with listening_socket() as sock:  # held until the server has stopped: the port stays ours
        port = sock.getsockname()[1]
        proc = start_server(sock, log_path=log_path)
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
