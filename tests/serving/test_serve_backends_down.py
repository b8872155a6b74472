"""Qdrant down -> 503 with a message; an LLM endpoint down -> 503 naming it. Auth disabled explicitly."""

from __future__ import annotations

from pathlib import Path

import pytest
import requests
from support.ports import refused_port
from support.server import running_server

pytestmark = pytest.mark.slow


def test_qdrant_down_is_503(tmp_path: Path, llm_models_dir: Path) -> None:
    from twin_core.settings import load_settings
    from twin_core.stores.warehouse import open_warehouse

    home = tmp_path / "twin"
    open_warehouse(load_settings(home=home)).get_or_create_user("Ada Quillfeather")
    with refused_port() as port:
        down = f"http://127.0.0.1:{port}"
        env = {
            "TWIN_HOME": str(home),
            "TWIN_QDRANT_URL": down,
            "TWIN_LLM_BACKEND": "openai",  # no local model to load: the server starts in seconds
            "TWIN_LLM_BASE_URL": f"{down}/v1",
            "TWIN_LLM_RETRIES": "0",
            "TWIN_SERVE_AUTH_DISABLED": "1",
        }
        with running_server(env, home / "server.log") as server:
            url = f"{server.url}/v1/models/twin:predict"
            resp = requests.post(url, json={"instances": [{"query": "hi"}]}, timeout=60)
            assert resp.status_code == 503, resp.text
            assert "Qdrant" in resp.json()["error"]
            assert resp.headers.get("Retry-After")
            assert "DISABLED" in server.log_tail(100_000)  # auth off is loud
    assert server.stopped["exit_code"] == 0, server.log_tail()
    # `twin serve --fd`: the server listened on the harness's socket, and says so with that socket's address
    assert (server.stopped["result"]["host"], server.stopped["result"]["port"]) == ("127.0.0.1", server.port)
    assert f"on http://127.0.0.1:{server.port} (inherited socket, --fd " in server.log_tail(100_000)
