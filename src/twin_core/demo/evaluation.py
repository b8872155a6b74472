"""`twin demo` stage: evaluate each new candidate against the base model, gate it, start a canary.

The real evaluation on a few held-out rows (the local SmolLM2 as judge, unless
TWIN_EVAL_JUDGE_BASE_URL names an endpoint), as ``twin evaluate`` runs it (``evaluate_once``: the same
inputs again return the stored report); the report (JSON + HTML) lands in the artifact store and a Comet
offline archive. A candidate that passes the gate becomes a 10 % canary, which ``twin serve``
picks up. The full run is ``twin evaluate --model REF``.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

ROWS = 10
MIN_ROWS = 10  # the sample authors hold out >= 10 usable rows; the demo's gate never decides on fewer
MAX_NEW_TOKENS = 48
JUDGE_TOKENS = 96


def stage(sample: Path) -> dict[str, Any]:
    from twin_core.deploy.rollout import start_canary
    from twin_core.evaluation.config import load_eval_config
    from twin_core.evaluation.resume import evaluate_once
    from twin_core.evaluation.run import plan
    from twin_core.evaluation.tools import build_tools
    from twin_core.settings import get_settings
    from twin_core.stores.registry import open_registry

    settings = get_settings()
    cfg = dataclasses.replace(
        load_eval_config(settings), max_rows=ROWS, min_rows=MIN_ROWS, max_new_tokens=MAX_NEW_TOKENS
    )
    latest: dict[str, Any] = {}
    for mv in open_registry(settings).list():
        if mv.stage == "candidate":
            latest[mv.author_slug] = mv  # versions are listed oldest first
    tools = build_tools(settings, judge_max_new_tokens=JUDGE_TOKENS)
    out = []
    for mv in latest.values():
        report, stored, reused = evaluate_once(settings, plan(settings, mv.ref, "base", cfg), tools)
        entry: dict[str, Any] = {
            "reused": reused,  # a demo run again on the same stores returns the stored report
            "model": mv.ref,
            "gate": report["gate"]["decision"],
            "failing": report["gate"]["failing"],
            "candidate": _rounded(report["metrics"]["candidate"]),
            "baseline": _rounded(report["metrics"]["baseline"]),
            "rows": report["rows"],
            "rag": {k: report["rag"].get(k) for k in ("hit_at_k", "mrr")},
            "judge": report["judge"]["status"],
            "report": stored["html"],
        }
        if report["gate"]["passed"]:
            entry["canary"] = start_canary(settings, mv.ref, 10, reason="demo: passed the gate")["model"]
        out.append(entry)
    return {"evaluated": out}


def _rounded(metrics: dict[str, Any]) -> dict[str, Any]:
    return {k: round(v, 4) if isinstance(v, float) else v for k, v in metrics.items()}
