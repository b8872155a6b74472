"""`twin rag search "..."`: vector search over the author's chunks (the feature stage's retrieval)."""

from __future__ import annotations

import typer

from twin_core.cli.protocol import step
from twin_core.settings import Settings


@step("rag.search")
def command(
    query: str = typer.Argument(..., help="What to look for."),
    author: str = typer.Option(None, "--author", help="Only this author's chunks (full name, slug or id)."),
    k: int = typer.Option(5, "-k", "--k", min=1, help="How many chunks (at least 1)."),
    category: list[str] = typer.Option(None, "--category", "-c", help="articles, posts, repositories (repeatable)."),
) -> dict:
    """Print the k chunks closest to the query, with their links and scores."""
    import logging

    from twin_core.cli.authors import require_author
    from twin_core.features.retrieval import check_query, search
    from twin_core.settings import get_settings

    settings = get_settings()
    categories = parse_categories(category)
    # as `rag query` limits it: a longer query would be cut to the model's first tokens without a word
    check_query(query, settings.serve.max_query_chars)
    who = require_author(settings, author)  # the full name: the search derives the author id from it
    hits = search(query, k=k, author=who, categories=categories, settings=settings)
    log = logging.getLogger(__name__)
    if not hits:  # an empty answer says why, and what to run
        log.warning("no hits: %s", _why_empty(settings, who, categories))
    for rank, hit in enumerate(hits, 1):
        log.info("%d. %.3f %s [%s] %s", rank, hit.score, hit.link, hit.category, hit.text[:100].replace("\n", " "))
    return {"query": query, "k": k, "author": author, "hits": [h.model_dump(mode="json") for h in hits]}


def _why_empty(settings: Settings, author: str | None, categories: list | None) -> str:
    from twin_core.features.retrieval import why_empty
    from twin_core.stores.vectors import open_vector_store

    store = open_vector_store(settings)  # the search closed its own (local Qdrant: one holder at a time)
    try:
        return why_empty(store, author, categories)
    finally:
        store.close()


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
