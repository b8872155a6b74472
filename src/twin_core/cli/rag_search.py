"""`twin rag search "..."`: vector search over the author's chunks (the feature stage's retrieval)."""

from __future__ import annotations

import typer

from twin_core.cli.protocol import step


@step("rag.search")
def command(
    query: str = typer.Argument(..., help="What to look for."),
    author: str = typer.Option(None, "--author", help="Only this author's chunks (full name or id)."),
    k: int = typer.Option(5, "-k", "--k", help="How many chunks."),
    category: list[str] = typer.Option(None, "--category", "-c", help="articles, posts, repositories (repeatable)."),
) -> dict:
    """Print the k chunks closest to the query, with their links and scores."""
    import logging

    from twin_core.cli.authors import require_author
    from twin_core.features.retrieval import search
    from twin_core.settings import get_settings

    require_author(get_settings(), author)
    hits = search(query, k=k, author=author, categories=category or None)
    log = logging.getLogger(__name__)
    for rank, hit in enumerate(hits, 1):
        log.info("%d. %.3f %s [%s] %s", rank, hit.score, hit.link, hit.category, hit.text[:100].replace("\n", " "))
    return {"query": query, "k": k, "author": author, "hits": [h.model_dump(mode="json") for h in hits]}
