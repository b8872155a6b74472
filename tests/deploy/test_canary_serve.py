"""The progressive canary against the real `twin serve` and the real request log: a canary that fails
30 % of its requests (TWIN_SERVE_FAULTS, deterministic: 3 of every 10) is rolled back at the second
analysis; its failures are logged under its own version; the archived version needs --force.

The intervals are driven by ``now`` (one analysis per call), never by sleeping; the routing is exact
because requests without a client id are split on their request id (serving/routing.py)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import requests
from support.rag_home import build_rag_home
from support.server import running_server
from support.tiny_models import tiny_llama

pytestmark = pytest.mark.slow

KEY = "ada-test-key-0123456789abcdef"
AUTHOR, SLUG = "Ada Quillfeather", "ada-quillfeather"
PER_BATCH = 16


def _tiny_model_folder(tmp: Path, source: Path, marker: str) -> Path:
    """A tiny random Llama: milliseconds a request, so the test's time goes to serving and the analysis."""
    merged = tiny_llama(source, tmp / marker / "merged", seed=len(marker))
    (merged / "MARKER.txt").write_text(marker)  # a distinct content hash per version
    return tmp / marker


def _batch(url: str, tag: str) -> list[int]:
    codes = []
    for i in range(PER_BATCH):
        resp = requests.post(
            f"{url}/v1/models/twin:predict",
            json={"instances": [{"query": f"What is idempotency? ({tag} {i})", "max_new_tokens": 1}]},
            headers={"Authorization": f"Bearer {KEY}", "x-request-id": f"{tag}-{i}"},
            timeout=300,
        )
        codes.append(resp.status_code)
    return codes


def _expected(tag: str, canary_ref: str, calls_before: int) -> tuple[int, int]:
    """(canary requests, canary failures) of one batch, from the pure routing and fault rules."""
    from twin_core.serving.faults import fails
    from twin_core.serving.routing import goes_to_canary, split_key

    to_canary = sum(goes_to_canary(split_key("key:x", f"{tag}-{i}"), SLUG, canary_ref, 50) for i in range(PER_BATCH))
    errors = sum(fails(calls_before + i, 0.3) for i in range(to_canary))
    return to_canary, errors


def test_a_canary_failing_30_percent_is_rolled_back_within_two_intervals(
    tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    from twin_core.deploy import rollout
    from twin_core.deploy.analysis import canary_config
    from twin_core.deploy.watch import analyse
    from twin_core.errors import InputError
    from twin_core.llm.base_model import resolve_base
    from twin_core.stores.registry import open_registry
    from twin_core.stores.warehouse import open_warehouse

    models_dir = Path(request.config.cache.mkdir("twin-llm-models"))
    home = tmp_path / "twin"
    settings = build_rag_home(home, models_dir)
    source = Path(resolve_base(settings, "packaged"))  # converts the GGUF once when no test did before
    registry = open_registry(settings)
    v1 = registry.register(AUTHOR, _tiny_model_folder(tmp_path, source, "v1"), {"base_model": "smollm2"})
    v2 = registry.register(AUTHOR, _tiny_model_folder(tmp_path, source, "v2"), {"base_model": "smollm2"})
    registry.set_stage(v1.ref, "production", "test")
    rollout.start_canary(settings, v2.ref, 50)
    cfg = canary_config({"interval": "10m", "step_weights": [50, 75], "min_requests": 6, "threshold": 2})
    env = {
        "TWIN_HOME": str(home),
        "TWIN_LLM_MODELS_DIR": str(models_dir),
        "TWIN_LLM_THREADS": "1",
        "TWIN_RAG_CONTEXT_TOKENS": "128",
        "TWIN_SERVE_API_KEYS": json.dumps({KEY: AUTHOR}),
        "TWIN_SERVE_FAULTS": json.dumps({v2.ref: 0.3}),
    }
    with running_server(env, home / "server.log") as server:
        c1, e1 = _expected("cz1", v2.ref, 0)
        codes = _batch(server.url, "cz1")
        assert codes.count(200) == PER_BATCH - e1 and codes.count(500) == e1, server.log_tail()
        now1 = datetime.now(UTC)
        first = analyse(settings, author=AUTHOR, cfg=cfg, now=now1)
        assert analyse(settings, author=AUTHOR, cfg=cfg, now=now1 + timedelta(minutes=9))["decision"] == "not-due"
        c2, e2 = _expected("cz2", v2.ref, c1)
        codes = _batch(server.url, "cz2")
        assert codes.count(500) == e2, server.log_tail()
        second = analyse(settings, author=AUTHOR, cfg=cfg, now=now1 + timedelta(minutes=10))

    assert (first["decision"], first["failed_checks"], first["weight"]) == ("fail", 1, 50)
    assert (first["canary"]["counted"], first["canary"]["errors"]) == (c1, e1)
    assert (first["production"]["counted"], first["production"]["errors"]) == (PER_BATCH - c1, 0)
    assert first["checks"][0]["name"] == "request-success-rate" and first["checks"][0]["result"] == "fail"
    # the second window slides: it holds only the second batch, not everything since the start
    assert (second["decision"], second["failed_checks"]) == ("rollback", 2)
    assert (second["canary"]["counted"], second["canary"]["errors"]) == (c2, e2)
    assert second["production"]["counted"] == PER_BATCH - c2

    mv = registry.get(v2.ref)
    assert mv.stage == "archived" and registry.production(AUTHOR).ref == v1.ref
    fail_entry, rollback_entry = mv.history[-2], mv.history[-1]
    assert (fail_entry.from_stage, fail_entry.to_stage) == ("canary", "canary")
    assert fail_entry.numbers["analysis"]["result"] == "fail" and fail_entry.numbers["canary"]["errors"] == e1
    assert rollback_entry.to_stage == "archived" and rollback_entry.numbers["failed_checks"] == 2
    assert rollback_entry.numbers["analysis"]["window"][0] == now1.isoformat()

    # every failure was the canary's, logged under its own version
    rows = [r for r in open_warehouse(settings).inference_logs(author=AUTHOR) if (r.request_id or "").startswith("cz")]
    failed = {(r.model_version, r.served_stage) for r in rows if r.status != "ok"}
    assert len(rows) == 2 * PER_BATCH and failed == {(v2.ref, "canary")}
    assert sum(r.status != "ok" for r in rows) == e1 + e2

    with pytest.raises(InputError, match="archived .* --force"):
        rollout.start_canary(settings, v2.ref, 10)
    again = rollout.start_canary(settings, v2.ref, 10, force=True)
    assert again["model"]["stage"] == "canary" and again["model"]["canary_percent"] == 10
