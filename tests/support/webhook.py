"""A JSON webhook on 127.0.0.1 for the alert tests (stdlib only: importable in the Airflow environment)."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


class WebhookSink:
    """Records every POST body it accepts in ``bodies``; with ``status`` other than 200 it refuses them (an
    outage), recorded in ``refused``. ``keys``: every POST's Idempotency-Key header, in order. ``close()``
    stops it."""

    def __init__(self) -> None:
        self.bodies: list[dict[str, Any]] = []
        self.keys: list[str | None] = []
        self.refused: list[dict[str, Any]] = []
        self.status = 200
        sink = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802
                length = int(self.headers.get("Content-Length", 0))
                body = json.loads(self.rfile.read(length))
                sink.keys.append(self.headers.get("Idempotency-Key"))
                (sink.bodies if sink.status == 200 else sink.refused).append(body)
                self.send_response(sink.status)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/alerts"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
