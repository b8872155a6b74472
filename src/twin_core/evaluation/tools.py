"""Evaluation's tools assembled from the product: the embedder, the feature-store search, the judge.

The CLI (`twin evaluate`), the demo and the benchmark all call ``build_tools``.
"""

from __future__ import annotations

from typing import Any

from twin_core.settings import Settings


def retriever(settings: Settings) -> Any:
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


def build_tools(
    settings: Settings,
    *,
    judge: bool = True,
    show_progress: bool = True,
    judge_max_new_tokens: int | None = None,
) -> Any:
    """Tools for ``evaluate``: embedder (topic similarity), retrieval (RAG metrics, context), the judge."""
    from twin_core.evaluation.config import load_eval_config
    from twin_core.evaluation.judge import Judge, open_judge
    from twin_core.evaluation.run import Tools
    from twin_core.features.embedding_model import load_embedder
    from twin_core.progress import progress, silent

    cfg = load_eval_config(settings)
    tokens = judge_max_new_tokens or cfg.judge_max_new_tokens
    return Tools(
        embed=load_embedder(settings).encode,
        retrieve=retriever(settings),
        judge=open_judge(settings, tokens, cfg.judge_max_failures) if judge else Judge(None, "off"),
        progress=progress if show_progress else silent,
    )
