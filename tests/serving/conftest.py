"""One `twin serve` process for the serving tests, on the sample corpus in embedded stores (127.0.0.1)."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from support.rag_home import build_rag_home
from support.server import running_server

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


# Package scope (tests/serving/__init__.py makes this folder a package): the server stops after the
# last serving test instead of polling its registry beside every later test of the session.
@pytest.fixture(scope="package")
def served(tmp_path_factory: pytest.TempPathFactory, llm_models_dir: Path) -> Iterator[Served]:
    home = tmp_path_factory.mktemp("serve") / "twin"
    settings = build_rag_home(home, llm_models_dir)  # closes its vector store: the server must own it
    env = server_env(home, llm_models_dir, TWIN_SERVE_REGISTRY_POLL_S="0.5")  # registry changes: fast pick-up
    with running_server(env, home / "server.log") as server:
        yield Served(server.url, settings, server.proc, env)
    assert server.stopped["exit_code"] == 0, server.log_tail()
