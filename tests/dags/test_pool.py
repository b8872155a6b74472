"""In local mode every step that opens the embedded Qdrant runs in the one-slot pool; pods do not."""

from __future__ import annotations

import pytest
from airflow.sdk import DAG
from twin_ops.factory import EMBEDDED_QDRANT_POOL


@pytest.mark.parametrize(("mode", "pool"), [("local", EMBEDDED_QDRANT_POOL), ("kubernetes", "default_pool")])
def test_qdrant_steps_take_the_pool_only_in_local_mode(monkeypatch: pytest.MonkeyPatch, mode: str, pool: str) -> None:
    monkeypatch.setenv("TWIN_EXECUTION", mode)
    from twin_ops import twin_step, twin_step_mapped

    with DAG(f"pool_probe_{mode}", schedule=None):
        qdrant_step = twin_step("embed", ["features", "run"], qdrant=True)
        mapped = twin_step_mapped("embed_author", qdrant=True).expand(arguments=[["features", "run"]])
        other = twin_step("crawl", ["etl", "crawl"])
    assert qdrant_step.pool == pool
    assert mapped.partial_kwargs.get("pool", "default_pool") == pool
    assert other.pool == "default_pool"
