"""`twin serve` in a subprocess for tests and benchmarks, around the demo's own launcher.

``running_server(env, log_path)`` binds a listening socket on a free port of 127.0.0.1, starts the server
on it (``twin serve --fd``: no other process can take the port while the models load, so the readiness
check and the tests talk to this server and no other), waits until it is ready (a server that dies or
never gets ready fails with the tail of its log), yields it, and always stops it with SIGTERM; afterwards
``server.stopped`` holds its exit code and result line. The socket is closed once the server has stopped.
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from twin_core.demo.serving import listening_socket, start_server, stop_server, wait_ready


@dataclass
class RunningServer:
    port: int
    proc: subprocess.Popen
    env: dict[str, str]
    log_path: Path
    stopped: dict[str, Any] = field(default_factory=dict)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def log_tail(self, chars: int = 3000) -> str:
        return self.log_path.read_text(errors="replace")[-chars:] if self.log_path.is_file() else ""


@contextmanager
def running_server(env: dict[str, str], log_path: Path) -> Iterator[RunningServer]:
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with listening_socket() as sock:
        port = sock.getsockname()[1]
        server = RunningServer(port, start_server(sock, env=env, log_path=log_path), env, log_path)
        try:
            try:
                wait_ready(server.proc, port)
            except Exception as exc:
                raise AssertionError(f"{exc}\n{server.log_tail()}") from None
            yield server
        finally:
            server.stopped = stop_server(server.proc)
