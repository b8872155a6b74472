"""`twin rag search "..."`: vector search over the author's chunks (the feature stage's retrieval)."""

from __future__ import annotations

import typer

from twin_core.cli.protocol import step


@step("rag.search")
def command(
    query: str = typer.Argument(..., help="What to look for."),
    author: str = typer.Option(None, "--author", help="Only this author's chunks (full name or id)."),
    k: int = typer.Option(5, "-k", "--k", min=1, help="How many chunks (at least 1)."),
    category: list[str] = typer.Option(None, "--category", "-c", help="articles, posts, repositories (repeatable)."),
) -> dict:
    """Print the k chunks closest to the query, with their links and scores."""
    import logging

    from twin_core.cli.authors import require_author
    from twin_core.features.retrieval import search
    from twin_core.settings import get_settings

    categories = parse_categories(category)
    require_author(get_settings(), author)
    hits = search(query, k=k, author=author, categories=categories)
    log = logging.getLogger(__name__)
    for rank, hit in enumerate(hits, 1):
        log.info("%d. %.3f %s [%s] %s", rank, hit.score, hit.link, hit.category, hit.text[:100].replace("\n", " "))
    return {"query": query, "k": k, "author": author, "hits": [h.model_dump(mode="json") for h in hits]}


def parse_categories(values: list[str] | None) -> list | None:
    """--category values as categories (aliases like post or repo accepted), a wrong one named with the option
    and what it accepts, before the author or any store is looked at. None: every category."""
    from twin_core.domain.documents import Category
    from twin_core.errors import InputError

    if not values:
        return None
    parsed = []
    for value in values:
        try:
            parsed.append(Category.parse(value))
        except InputError:
            *known, last = (c.value for c in Category)
            raise InputError(f"--category {value!r}: expected {', '.join(known)} or {last}") from None
    return parsed
