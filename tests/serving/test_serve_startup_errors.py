"""The server's own backstop: uvicorn's startup exit becomes a ConfigError (a JSON line, exit 2)."""

from __future__ import annotations

import signal
import socket
from typing import Any

import pytest


async def _asgi_app(scope: dict[str, Any], receive: Any, send: Any) -> None:  # never reached: the bind fails first
    raise RuntimeError("no lifespan here")


def test_a_port_taken_after_the_check_is_a_config_error(monkeypatch: pytest.MonkeyPatch) -> None:
    from twin_core.errors import ConfigError
    from twin_core.serving.server import TwinModelServer

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        server = TwinModelServer("127.0.0.1", port)
        monkeypatch.setattr(server, "_register_and_check_atleast_one_model_is_ready", lambda models: None)
        handlers = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
        try:
            with pytest.raises(ConfigError) as raised:
                server.start_app([], lambda srv: _asgi_app)
        finally:  # start_app silences SIGINT/SIGTERM for uvicorn: give pytest its Ctrl-C back
            for sig, handler in handlers.items():
                signal.signal(sig, handler)
    assert str(raised.value) == (
        f"--host/--port: the HTTP server could not start on 127.0.0.1:{port} (uvicorn exit 3; its error is "
        "logged above, e.g. the address is already in use)"
    )
