"""`make airflow`'s launcher (scripts/airflow_local.py) owns the API server's port.

The API server must know its port before it starts (the execution API URL and the base URL name it), so
it cannot bind port 0. With ``--port 0`` the launcher picks one, and when the API server cannot bind it
it starts it again on another; a health answer counts only from the API server it started. A fake API
server (a few lines of Python that bind AIRFLOW__API__PORT as uvicorn does) stands in for Airflow's: no
test here waits on time, each port conflict is built before the start.
"""

from __future__ import annotations

import importlib.util
import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from support.ports import refused_port

LAUNCHER = Path(__file__).resolve().parents[2] / "scripts" / "airflow_local.py"

# Binds like uvicorn: on a taken port it logs asyncio's "address already in use" and exits 3; else it
# answers /api/v2/monitor/health until it is stopped.
FAKE_API_SERVER = r"""
import http.server, os, sys
port = int(os.environ["AIRFLOW__API__PORT"])

class Health(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(200 if self.path == "/api/v2/monitor/health" else 404)
        self.end_headers()
        self.wfile.write(b'{"metadatabase": {"status": "healthy"}}')

    def log_message(self, *args):
        pass

try:
    server = http.server.HTTPServer(("127.0.0.1", port), Health)
except OSError as exc:
    if os.environ.get("FAKE_STAY_SILENT"):  # neither exits nor logs: only the port's listener tells
        import time
        time.sleep(3600)
    print(f"[Errno {exc.errno}] error while attempting to bind on address ('127.0.0.1', {port}): "
          f"{exc.strerror.lower()}", flush=True)
    sys.exit(3)
print(f"listening on {port}", flush=True)
server.serve_forever()
"""


@pytest.fixture(scope="module")
def launcher():  # noqa: ANN201
    spec = importlib.util.spec_from_file_location("twin_airflow_launcher", LAUNCHER)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def fake_api_server(tmp_path: Path) -> list[str]:
    script = tmp_path / "fake_api_server.py"
    script.write_text(FAKE_API_SERVER)
    return [sys.executable, str(script)]


@pytest.fixture
def started(launcher) -> Iterator[list[subprocess.Popen]]:  # noqa: ANN001
    """API servers a test started; stopped at its end, whatever happened."""
    procs: list[subprocess.Popen] = []
    yield procs
    for proc in procs:
        launcher._terminate_tree(proc)


def _env(port: int) -> dict[str, str]:
    return {"AIRFLOW__API__PORT": str(port), "PATH": "/usr/bin:/bin"}


@contextmanager
def _listening_port() -> Iterator[int]:
    """A 127.0.0.1 port the kernel picks, with this process listening on it (nothing answers) until the
    block ends. Only bound, not listening, is support.ports.refused_port: both block a bind."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        yield s.getsockname()[1]


def _ports(launcher, monkeypatch: pytest.MonkeyPatch, first: int) -> list[int]:  # noqa: ANN001
    """The launcher's free-port pick returns ``first`` once, then really free ports; returns the picks."""
    picks: list[int] = []
    real = launcher._free_port

    def pick() -> int:
        picks.append(first if not picks else real())
        return picks[-1]

    monkeypatch.setattr(launcher, "_free_port", pick)
    return picks


@pytest.mark.parametrize("listening", [False, True], ids=["bound-only", "listening"])
def test_port_zero_moves_to_another_port_when_the_pick_is_taken(
    launcher, fake_api_server, started, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, listening: bool
) -> None:
    """Bound-only: the API server exits with "address already in use". Listening: the launcher sees
    another process's listener on the port. Either way: a second start, on another port."""
    log = tmp_path / "api-server.log"
    with _listening_port() if listening else refused_port() as taken:
        picks = _ports(launcher, monkeypatch, taken)
        proc, port, env = launcher.start_api_server(fake_api_server, _env, 0, log)
        started.append(proc)
    assert len(picks) == 2
    assert picks[0] != picks[1] == port
    assert env == _env(port)
    assert proc.poll() is None
    assert launcher.owns_port(proc.pid, port)
    text = log.read_text()
    assert text.endswith(f"listening on {port}\n")
    if not listening:  # the first start logged why it stopped
        assert f"('127.0.0.1', {picks[0]}): address already in use" in text


def test_a_fixed_port_held_by_another_process_fails_the_start(
    launcher, fake_api_server, started, tmp_path: Path
) -> None:
    """Another process answers health on that port: not taken for the launched API server."""
    answered: list[str] = []

    def healthy(url: str) -> bool:
        answered.append(url)
        return True  # anything on the port would answer

    with _listening_port() as port:
        # the started server stays up, silent (no exit, no "address in use" to race with): the listener decides
        env = lambda p: {**_env(p), "FAKE_STAY_SILENT": "1"}  # noqa: E731
        with pytest.raises(SystemExit) as exc:
            launcher.start_api_server(fake_api_server, env, port, tmp_path / "api-server.log", healthy=healthy)
    assert str(exc.value) == f"another process listens on port {port}: pid [{os.getpid()}] (attempt 1 of 1)"
    assert answered == []


def test_a_fixed_port_the_server_cannot_bind_fails_the_start_with_the_reason(
    launcher, fake_api_server, tmp_path: Path
) -> None:
    with refused_port() as port, pytest.raises(SystemExit) as exc:
        launcher.start_api_server(fake_api_server, _env, port, tmp_path / "api-server.log")
    assert str(exc.value) == f"the API server could not bind port {port}: address already in use (attempt 1 of 1)"


def test_the_listener_is_the_started_server(launcher, fake_api_server, started, tmp_path: Path) -> None:
    proc, port, _ = launcher.start_api_server(fake_api_server, _env, 0, tmp_path / "api-server.log")
    started.append(proc)
    assert launcher.listeners(port) == {proc.pid}
    with refused_port() as other:  # a port nobody listens on
        assert launcher.listeners(other) == set()
        assert not launcher.owns_port(proc.pid, other)


def test_scheduler_and_triggerer_start_without_log_servers(launcher) -> None:
    """All components share one AIRFLOW_HOME: the API server reads task logs from its files."""
    assert launcher.COMPONENTS == {
        "scheduler": ["--skip-serve-logs"],
        "dag-processor": [],
        "triggerer": ["--skip-serve-logs"],
    }
