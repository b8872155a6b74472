"""A local HTTP server playing the Kubernetes API for InferenceServices: GET and merge-PATCH.

It records every request (method, path, content type, authorization, body), applies PATCH bodies as
JSON merge patches (RFC 7386), the way the API server does for ``application/merge-patch+json``, and
then plays KServe's validating webhook (``kserve_rules``): a patch KServe would refuse gets a 422 and
changes nothing, so a test that passes shows every patch ``twin deploy`` sent was admissible.
With ``allowed`` (the ``resourceNames`` of the deployer's Role) it plays RBAC too: a GET or PATCH of
any other InferenceService is answered 403 Forbidden, before the API server looks it up, as Kubernetes
does.
"""

from __future__ import annotations

import copy
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import kserve_rules
from kserve_rules import merge_patch

ISVC_PATH = "/apis/serving.kserve.io/v1beta1/namespaces/{ns}/inferenceservices/{name}"

__all__ = ["ISVC_PATH", "FakeKube", "merge_patch"]


def isvc_path(isvc: dict[str, Any]) -> str:
    return ISVC_PATH.format(ns=isvc["metadata"]["namespace"], name=isvc["metadata"]["name"])


class _KubeHandler(BaseHTTPRequestHandler):
    """The API server's side of one request, on the FakeKube that owns the server (``server.fake``)."""

    server: _KubeServer

    def log_message(self, *args: Any) -> None:
        pass

    @property
    def fake(self) -> FakeKube:
        return self.server.fake

    def _reply(self, code: int, obj: dict[str, Any]) -> None:
        data = json.dumps(obj).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _record(self, body: Any = None) -> None:
        self.fake.requests.append(
            {
                "method": self.command,
                "path": self.path.split("?")[0],
                "content_type": self.headers.get("Content-Type"),
                "authorization": self.headers.get("Authorization"),
                "body": body,
            }
        )

    def _forbidden(self, verb: str) -> bool:
        """RBAC: 403 for an InferenceService the Role does not name (existing or not)."""
        name = self.path.split("?")[0].rsplit("/", 1)[-1]
        if self.fake.allowed is None or name in self.fake.allowed:
            return False
        ns = self.path.split("/namespaces/", 1)[1].split("/", 1)[0]
        message = (
            f'inferenceservices.serving.kserve.io "{name}" is forbidden: User '
            f'"system:serviceaccount:{ns}:llm-twin-deployer" cannot {verb} resource "inferenceservices" '
            f'in API group "serving.kserve.io" in the namespace "{ns}"'
        )
        status = {"kind": "Status", "code": 403, "reason": "Forbidden", "message": message}
        self._reply(403, {**status, "details": {"name": name, "kind": "inferenceservices"}})
        return True

    def do_GET(self) -> None:  # noqa: N802
        self._record()
        if self._forbidden("get"):
            return None
        obj = self.fake.objects.get(self.path.split("?")[0])
        if obj is None:
            return self._reply(404, {"kind": "Status", "code": 404, "reason": "NotFound"})
        self._reply(200, obj)

    def do_PATCH(self) -> None:  # noqa: N802
        body = json.loads(self.rfile.read(int(self.headers.get("Content-Length") or 0)) or b"{}")
        self._record(body)
        if self._forbidden("patch"):
            return None
        path = self.path.split("?")[0]
        if path not in self.fake.objects:
            return self._reply(404, {"kind": "Status", "code": 404, "reason": "NotFound"})
        if self.headers.get("Content-Type") != "application/merge-patch+json":
            return self._reply(415, {"kind": "Status", "code": 415})
        new, errors = kserve_rules.apply(self.fake.objects[path], body)
        if errors:  # admission webhook "inferenceservice.kserve-webhook-server.validator" denied
            self.fake.refused.append(errors)
            return self._reply(422, {"kind": "Status", "code": 422, "message": "; ".join(errors)})
        new["metadata"]["generation"] = new["metadata"].get("generation", 1) + 1
        self.fake.objects[path] = new
        self._reply(200, new)


class _KubeServer(ThreadingHTTPServer):
    """The HTTP server of one FakeKube: its handlers read and change that FakeKube's objects."""

    def __init__(self, fake: FakeKube) -> None:
        self.fake = fake
        super().__init__(("127.0.0.1", 0), _KubeHandler)


class FakeKube:
    def __init__(self, *isvcs: dict[str, Any], allowed: list[str] | None = None) -> None:
        self.objects = {isvc_path(o): copy.deepcopy(o) for o in isvcs}
        self.allowed = None if allowed is None else set(allowed)
        self.requests: list[dict[str, Any]] = []
        self.refused: list[list[str]] = []
        self.path = isvc_path(isvcs[0])
        self.server = _KubeServer(self)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def isvc(self) -> dict[str, Any]:
        """The first (or only) InferenceService."""
        return self.objects[self.path]

    def get(self, name: str, namespace: str = "llm-twin") -> dict[str, Any]:
        return self.objects[ISVC_PATH.format(ns=namespace, name=name)]

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
