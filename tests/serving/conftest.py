"""One `twin serve` process for the module, on the sample corpus in embedded stores (127.0.0.1)."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

ADA_KEY = "ada-test-key-0123456789abcdef"
BOB_KEY = "bob-test-key-0123456789abcdef"


@dataclass
class Served:
    url: str
    settings: Any
    proc: subprocess.Popen
    env: dict[str, str]


@pytest.fixture(scope="session")
def llm_models_dir(request: pytest.FixtureRequest) -> Path:
    return Path(request.config.cache.mkdir("twin-llm-models"))


def server_env(home: Path, models_dir: Path, **extra: str) -> dict[str, str]:
    return {
        "TWIN_HOME": str(home),
        "TWIN_LLM_MODELS_DIR": str(models_dir),
        "TWIN_LLM_THREADS": "1",
        "TWIN_RAG_CONTEXT_TOKENS": "256",
        "TWIN_SERVE_API_KEYS": json.dumps({ADA_KEY: "Ada Quillfeather", BOB_KEY: "Bob Marlowe"}),
        **extra,
    }


@pytest.fixture(scope="session")
def served(tmp_path_factory: pytest.TempPathFactory, llm_models_dir: Path) -> Iterator[Served]:
    from twin_core.demo.sample_index import build_rag_home
    from twin_core.demo.serving import free_port, start_server, stop_server, wait_ready

    home = tmp_path_factory.mktemp("serve") / "twin"
    settings = build_rag_home(home, llm_models_dir)  # closes its vector store: the server must own it
    port = free_port()
    env = server_env(home, llm_models_dir)
    proc = start_server(port, env=env, log_path=home / "server.log")
    try:
        wait_ready(proc, port)
    except Exception:
        stop_server(proc)
        raise AssertionError((home / "server.log").read_text()[-3000:]) from None
    s = Served(f"http://127.0.0.1:{port}", settings, proc, env)
    yield s
    stopped = stop_server(proc)
    assert stopped["exit_code"] == 0, (home / "server.log").read_text()[-3000:]
