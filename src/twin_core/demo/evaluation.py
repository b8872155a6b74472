"""`twin demo` stage: evaluate each new candidate against the base model, gate it, start a canary.

The real ``evaluate`` on a few held-out rows (the local SmolLM2 as judge, unless
TWIN_EVAL_JUDGE_BASE_URL names an endpoint); the report (JSON + HTML) lands in the artifact store and
a Comet offline archive. A candidate that passes the gate becomes a 10 % canary, which ``twin serve``
picks up. The full run is ``twin evaluate --model REF``.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

ROWS = 3
MAX_NEW_TOKENS = 48
JUDGE_TOKENS = 96


def stage(sample: Path) -> dict[str, Any]:
    from twin_core.deploy.rollout import start_canary
    from twin_core.evaluation.config import load_eval_config
    from twin_core.evaluation.judge import open_judge
    from twin_core.evaluation.report import write_report
    from twin_core.evaluation.run import Tools, evaluate
    from twin_core.features.embedding_model import load_embedder
    from twin_core.progress import progress
    from twin_core.settings import get_settings
    from twin_core.stores.registry import open_registry

    settings = get_settings()
    cfg = dataclasses.replace(load_eval_config(settings), max_rows=ROWS, max_new_tokens=MAX_NEW_TOKENS)
    latest: dict[str, Any] = {}
    for mv in open_registry(settings).list():
        if mv.stage == "candidate":
            latest[mv.author_slug] = mv  # versions are listed oldest first
    tools = Tools(
        embed=load_embedder(settings).encode,
        retrieve=retriever(settings),
        judge=open_judge(settings, JUDGE_TOKENS, cfg.judge_max_failures),
        progress=progress,
    )
    out = []
    for mv in latest.values():
        result = evaluate(settings, mv.ref, "base", tools=tools, config=cfg)
        report = result.as_dict()
        stored = write_report(settings, report)
        entry: dict[str, Any] = {
            "model": mv.ref,
            "gate": report["gate"]["decision"],
            "failing": report["gate"]["failing"],
            "candidate": _rounded(report["metrics"]["candidate"]),
            "baseline": _rounded(report["metrics"]["baseline"]),
            "rag": {k: report["rag"].get(k) for k in ("hit_at_k", "mrr")},
            "judge": report["judge"]["status"],
            "report": stored["html"],
        }
        if report["gate"]["passed"]:
            entry["canary"] = start_canary(settings, mv.ref, 10, reason="demo: passed the gate")["model"]
        out.append(entry)
    return {"evaluated": out}


def retriever(settings: Any) -> Any:
    """The feature store's search as evaluation's ``retrieve`` tool; None when nothing is embedded."""
    from twin_core.features import feature_store as fs
    from twin_core.features.embedding_model import load_embedder
    from twin_core.features.retrieval import search
    from twin_core.stores.vectors import open_vector_store

    store = open_vector_store(settings)
    if not any(store.has_collection(fs.embedded_collection(c)) for c in fs.Category):
        return None
    embedder = load_embedder(settings)

    def retrieve(query: str, author: str, k: int) -> list[dict[str, Any]]:
        hits = search(query, k=k, author=author, settings=settings, store=store, embedder=embedder)
        hits = sorted(hits, key=lambda h: h.score, reverse=True)[:k]
        return [{"document_id": h.document_id, "link": h.link, "text": h.text} for h in hits]

    return retrieve


def _rounded(metrics: dict[str, Any]) -> dict[str, Any]:
    return {k: round(v, 4) if isinstance(v, float) else v for k, v in metrics.items()}
