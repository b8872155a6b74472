"""Model listings show a key the `twin` alias and its own author's versions only (issue 19): the
OpenAI list, KServe v1/v2 lists and v2 metadata, on the real `twin serve`; the in-process predictor
routes a key to its own author's model whatever the body says."""

from __future__ import annotations

import shutil
import time
from pathlib import Path
from typing import Any

import pytest
import requests

pytestmark = pytest.mark.slow

ADA = {"Authorization": "Bearer ada-test-key-0123456789abcdef"}
BOB = {"Authorization": "Bearer bob-test-key-0123456789abcdef"}


def _listed(served: Any, key: dict[str, str]) -> dict[str, set[str]]:
    """Every name or version each listing shows to ``key``."""

    def get(path: str) -> dict[str, Any]:
        resp = requests.get(f"{served.url}{path}", headers=key, timeout=60)
        assert resp.status_code == 200, resp.text
        return resp.json()

    v1, v2 = get("/v1/models"), get("/v2/models")
    return {
        "openai": {m["id"] for m in get("/openai/v1/models")["data"]},
        "v1": set(v1["models"]) | set(v1["versions"]),
        "v2": set(v2["models"]) | set(v2["versions"]),
        "v2 metadata": {get("/v2/models/twin")["name"], *get("/v2/models/twin")["versions"]},
    }


def _bob_production(served: Any, llm_models_dir: Path, tmp_path: Path) -> str:
    from twin_core.stores.registry import open_registry

    folder = tmp_path / "bob-v1"
    shutil.copytree(llm_models_dir / "smollm2-135m-instruct", folder / "merged")
    (folder / "merged" / "MARKER.txt").write_text("bob listing test")  # its own content hash
    registry = open_registry(served.settings)
    bob = registry.register("Bob Marlowe", folder, {"base_model": "smollm2"})
    registry.set_stage(bob.ref, "production", reason="listing test")
    return bob.ref


def _wait_listed(served: Any, key: dict[str, str], version: str, timeout_s: float = 300) -> None:
    """Poll until listed: the bound is for a machine loaded by other jobs (an idle one takes seconds)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if version in _listed(served, key)["openai"]:
            return
        time.sleep(0.5)
    raise AssertionError(f"twin serve did not pick up {version}")


def test_a_key_lists_only_its_own_authors_versions(served: Any, llm_models_dir: Path, tmp_path: Path) -> None:
    from twin_core.stores.registry import open_registry

    bob_ref = _bob_production(served, llm_models_dir, tmp_path)
    try:
        _wait_listed(served, BOB, bob_ref)
        bob_sees = _listed(served, BOB)
        ada_sees = _listed(served, ADA)
        for listing in ("openai", "v1", "v2", "v2 metadata"):
            assert bob_ref in bob_sees[listing], listing
            assert "twin" in ada_sees[listing], listing
            assert not any(v.startswith("bob-marlowe/") for v in ada_sees[listing]), (listing, ada_sees[listing])
            assert "twin-llm" not in ada_sees[listing] | bob_sees[listing]  # the in-process predictor: internal
        assert {v for v in ada_sees["openai"] if v != "twin"} == {v for v in ada_sees["v1"] if v != "twin"}

        # the in-process predictor is no public model (a predictor container's key check, which answers Ada's
        # key with Ada's model whatever the body says, is in test_serve_inprocess.py)
        instance = {"messages": [{"role": "user", "content": "hi"}], "max_new_tokens": 1, "author": "Bob Marlowe"}
        url = f"{served.url}/v1/models/twin-llm:predict"
        resp = requests.post(url, json={"instances": [instance]}, headers=ADA, timeout=300)
        assert resp.status_code == 404, resp.text
    finally:
        open_registry(served.settings).archive(bob_ref, "listing test done")


def test_listings_need_a_key_and_the_repository_routes_are_closed(served: Any) -> None:
    for path in ("/v1/models", "/v2/models", "/v2/models/twin", "/openai/v1/models"):
        assert requests.get(f"{served.url}{path}", timeout=60).status_code == 401, path
    assert requests.get(f"{served.url}/v2/models/twin-llm", headers=ADA, timeout=60).status_code == 404
    unload = requests.post(f"{served.url}/v2/repository/models/twin/unload", headers=ADA, timeout=60)
    assert unload.status_code == 404
    assert requests.get(f"{served.url}/v2/models/twin/ready", timeout=60).json()["ready"] is True  # readiness: open
