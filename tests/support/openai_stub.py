"""An OpenAI-compatible ``/chat/completions`` endpoint on 127.0.0.1 for tests and benchmarks.

Subclass ``ChatHandler`` and implement ``reply(body) -> str`` (the assistant message's content), or
override ``do_POST`` and answer with ``send_json``; ``serve(handler)`` runs it and yields the base URL.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


class ChatHandler(BaseHTTPRequestHandler):
    def reply(self, body: dict[str, Any]) -> str:
        raise NotImplementedError

    def read_body(self) -> dict[str, Any]:
        return json.loads(self.rfile.read(int(self.headers["Content-Length"])))

    def send_json(self, obj: Any, status: int = 200) -> None:
        raw = json.dumps(obj).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(raw)))
        self.end_headers()
        self.wfile.write(raw)

    def do_POST(self) -> None:  # noqa: N802
        content = self.reply(self.read_body())
        self.send_json({"choices": [{"message": {"role": "assistant", "content": content}}], "usage": {}})

    def log_message(self, *args: Any) -> None:
        pass


@contextmanager
def serve(handler: type[BaseHTTPRequestHandler]) -> Iterator[str]:
    """Serve ``handler`` on a free 127.0.0.1 port; yields ``http://127.0.0.1:PORT/v1``; stops on exit."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/v1"
    finally:
        server.shutdown()
        server.server_close()
