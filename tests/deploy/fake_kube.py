"""A local HTTP server playing the Kubernetes API for one InferenceService: GET and merge-PATCH.

It records every request (method, path, content type, authorization, body) and applies PATCH bodies
as JSON merge patches (RFC 7386), the way the API server does for ``application/merge-patch+json``.
"""

from __future__ import annotations

import copy
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

ISVC_PATH = "/apis/serving.kserve.io/v1beta1/namespaces/{ns}/inferenceservices/{name}"


def merge_patch(target: Any, patch: Any) -> Any:
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    out = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            out.pop(key, None)
        else:
            out[key] = merge_patch(out.get(key), value)
    return out


class FakeKube:
    def __init__(self, isvc: dict[str, Any]) -> None:
        self.isvc = copy.deepcopy(isvc)
        self.requests: list[dict[str, Any]] = []
        self.path = ISVC_PATH.format(ns=isvc["metadata"]["namespace"], name=isvc["metadata"]["name"])
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def _reply(self, code: int, obj: dict[str, Any]) -> None:
                data = json.dumps(obj).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def _record(self, body: Any = None) -> None:
                fake.requests.append(
                    {
                        "method": self.command,
                        "path": self.path.split("?")[0],
                        "content_type": self.headers.get("Content-Type"),
                        "authorization": self.headers.get("Authorization"),
                        "body": body,
                    }
                )

            def do_GET(self) -> None:  # noqa: N802
                self._record()
                if self.path.split("?")[0] != fake.path:
                    return self._reply(404, {"kind": "Status", "code": 404, "reason": "NotFound"})
                self._reply(200, fake.isvc)

            def do_PATCH(self) -> None:  # noqa: N802
                body = json.loads(self.rfile.read(int(self.headers.get("Content-Length") or 0)) or b"{}")
                self._record(body)
                if self.path.split("?")[0] != fake.path:
                    return self._reply(404, {"kind": "Status", "code": 404, "reason": "NotFound"})
                if self.headers.get("Content-Type") != "application/merge-patch+json":
                    return self._reply(415, {"kind": "Status", "code": 415})
                fake.isvc = merge_patch(fake.isvc, body)
                fake.isvc["metadata"]["generation"] = fake.isvc["metadata"].get("generation", 1) + 1
                self._reply(200, fake.isvc)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> FakeKube:
        self.thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.server.shutdown()
        self.server.server_close()

    def kubeconfig(self, folder: Path, token: str = "test-token") -> Path:
        path = folder / "kubeconfig"
        path.write_text(
            json.dumps(
                {
                    "apiVersion": "v1",
                    "kind": "Config",
                    "clusters": [{"name": "fake", "cluster": {"server": self.url}}],
                    "users": [{"name": "fake", "user": {"token": token}}],
                    "contexts": [{"name": "fake", "context": {"cluster": "fake", "user": "fake"}}],
                    "current-context": "fake",
                }
            )
        )
        return path
