"""`twin demo` stage: featurize the warehouse the earlier stages filled, then show a search."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any


def stage(sample: Path) -> dict[str, Any]:
    from twin_core.features.pipeline import run_features
    from twin_core.features.retrieval import search
    from twin_core.progress import progress
    from twin_core.settings import get_settings

    settings = get_settings()
    result = run_features(settings, progress=progress)
    keys = ("processed", "unchanged", "deleted", "skipped", "chunks", "points")
    summary: dict[str, Any] = {k: result[k] for k in keys}
    summary["seconds"] = result["timings"].get("total")
    queries = sample / "queries.jsonl"
    if queries.is_file():
        first = json.loads(queries.read_text(encoding="utf-8").splitlines()[0])
        hits = search(first["query"], k=3, settings=settings)
        top = [{"link": h.link, "score": round(h.score, 3)} for h in hits]
        summary["search"] = {"query": first["query"], "top": top}
    return summary
