"""Fixtures for the ETL tests: the local fixture web site, crawl settings, and git repositories."""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from support import SAMPLE_DIR

FIXTURES = Path(__file__).resolve().parent / "fixtures"
SAMPLE_REPO = SAMPLE_DIR / "repos" / "tiny-pipeline"
GIT_ENV = {
    "GIT_AUTHOR_NAME": "Test",
    "GIT_AUTHOR_EMAIL": "test@example.com",
    "GIT_COMMITTER_NAME": "Test",
    "GIT_COMMITTER_EMAIL": "test@example.com",
    "GIT_CONFIG_GLOBAL": os.devnull,
    "GIT_CONFIG_NOSYSTEM": "1",
}


def _load_site_server() -> Any:
    spec = importlib.util.spec_from_file_location("etl_fixture_site_server", FIXTURES / "site_server.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


site_server = _load_site_server()


@pytest.fixture(scope="session")
def site_module() -> Any:
    """The fixture site module (credentials, posts) for assertions."""
    return site_server


@pytest.fixture(scope="session")
def site() -> Iterator[Any]:
    """The fixture web site on 127.0.0.1 (``site.base_url``, ``site.hits``)."""
    server = site_server.FixtureServer().start()
    yield server
    server.stop()


def crawl_overrides(site: Any) -> dict[str, Any]:
    return {
        "crawl_allow_hosts": "127.0.0.1",
        # ample for a page of the local site on a loaded machine (a timed-out fetch is retried, which would also
        # change the hit counts some tests assert); /slow never answers, so it times out whatever the bound
        "crawl_timeout_s": 5.0,
        "crawl_backoff_s": 0.05,
        "crawl_max_retries": 2,
        "crawl_max_bytes": 1_000_000,
        "medium_base_url": f"{site.base_url}/medium",
        "linkedin_base_url": f"{site.base_url}/linkedin",
    }


@pytest.fixture
def crawl_settings(twin_home: Path, site: Any, monkeypatch: pytest.MonkeyPatch) -> Any:
    """Settings for crawling the fixture site, also exported to `twin` subprocesses."""
    for key, value in crawl_overrides(site).items():
        monkeypatch.setenv(f"TWIN_{key.upper()}", str(value))
    for var in ("TWIN_LINKEDIN_USERNAME", "TWIN_LINKEDIN_PASSWORD", "TWIN_LINKEDIN_LI_AT"):
        monkeypatch.delenv(var, raising=False)
    from twin_core.settings import get_settings

    get_settings.cache_clear()
    return get_settings()


def git(cwd: Path, *args: str) -> None:
    subprocess.run(["git", *args], cwd=cwd, env={**os.environ, **GIT_ENV}, check=True, capture_output=True)


@pytest.fixture
def make_repo(tmp_path: Path) -> Callable[..., Path]:
    """``make_repo(files={path: bytes|str}, from_sample=True)`` -> a committed git repository in tmp."""

    def _make(files: dict[str, bytes | str] | None = None, *, from_sample: bool = True, name: str = "repo") -> Path:
        root = tmp_path / name
        if from_sample:
            shutil.copytree(SAMPLE_REPO, root)
        else:
            root.mkdir(parents=True)
            (root / "README.md").write_text("# tiny\n\nA tiny repository built by the tests.\n")
            (root / "main.py").write_text("def main() -> None:\n    print('hello')\n")
        for rel, data in (files or {}).items():
            path = root / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data if isinstance(data, bytes) else data.encode("utf-8"))
        git(root, "init", "-q", "-b", "main")
        git(root, "add", "-A")
        git(root, "commit", "-q", "-m", "test")
        return root

    return _make
