"""`twin features run` and `twin rag search` as a pipeline step runs them (subprocess, JSON result line)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest


@pytest.mark.slow
def test_features_run_and_rag_search(twin_home: Path, twin: Any, sample_dir: Path) -> None:
    assert twin("warehouse", "import", str(sample_dir)).returncode == 0
    run = twin("features", "run")
    assert run.returncode == 0, run.stderr
    r = run.result
    assert r["step"] == "features.run"
    assert r["status"] == "ok"
    assert r["processed"] == 30
    assert r["points"] == r["chunks"] > 0
    assert {"clean", "chunk", "embed", "load", "total"} <= r["timings"].keys()

    again = twin("features", "run", "--author", "Ada Quillfeather")
    assert again.returncode == 0
    assert again.result["status"] == "unchanged"
    assert again.result["unchanged"] == 30

    hits = twin("rag", "search", "overwrite partitions instead of appending", "--author", "Ada Quillfeather", "-k", "3")
    assert hits.returncode == 0, hits.stderr
    assert len(hits.result["hits"]) == 3
    assert all(h["author_full_name"] == "Ada Quillfeather" and h["link"] for h in hits.result["hits"])

    empty = twin("rag", "search", "  ")
    assert empty.returncode == 3
    assert "empty" in empty.result["error"]
