"""`twin rag query "..."`: the whole RAG in-process (retrieval, prompt, local or remote LLM)."""

from __future__ import annotations

import logging
import sys
from typing import Any

import typer

from twin_core.cli.protocol import step

log = logging.getLogger(__name__)


@step("rag.query")
def command(
    query: str = typer.Argument(..., help="The question to ask the twin."),
    author: str = typer.Option(None, "--author", help="Author whose content to use (default: self-query)."),
    max_new_tokens: int = typer.Option(None, "--max-new-tokens", help="Answer length cap in tokens."),
    category: list[str] = typer.Option(None, "--category", help="Restrict to articles, posts or repositories."),
    model: str = typer.Option(
        "production",
        "--model",
        help="Who answers: production (the author's production version in the registry, else the base "
        "model, as twin serve answers), base, or a version <author_slug>/vNNNN of that author.",
    ),
) -> dict:
    """Answer a question with RAG over the author's own content, and print the answer and its sources."""

    from twin_core.cli.authors import require_author
    from twin_core.cli.rag_search import parse_categories
    from twin_core.inference.answering_model import check_model_choice
    from twin_core.inference.pipeline import RAGRequest, validate_request
    from twin_core.settings import get_settings

    settings = get_settings()
    request = RAGRequest(query, author, max_new_tokens, parse_categories(category))
    # bad input is refused before the embedding model and the LLM load (seconds), as `rag search` does
    validate_request(request, settings)
    which = check_model_choice(settings, model)
    request.author = require_author(settings, author)  # a slug or id as the full name
    result = _answering_pipeline(settings, request, which).answer(request, transport="cli")
    print(result.answer, file=sys.stderr)  # for the reader; stdout carries the result line only
    for src in result.sources:
        print(f"  - {src['link']} ({src['category']}, score {src['score']})", file=sys.stderr)
    return result.as_dict()


def _answering_pipeline(settings: Any, request: Any, which: str) -> Any:
    """The pipeline with the LLM that answers for the request's author: the author is resolved first (named,
    or found in the query by name, or the only one), without an LLM; only when that finds no one and the
    LLM self-query is on (TWIN_RAG_SELF_QUERY_LLM) does the base model resolve and answer, as before."""
    from twin_core.errors import InputError
    from twin_core.inference.answering_model import open_answering_llm
    from twin_core.inference.errors import UnknownAuthor
    from twin_core.inference.pipeline import open_pipeline
    from twin_core.llm import open_llm

    pipeline = open_pipeline(settings, with_llm=False, lazy_embedder=True)  # no model before the author is known
    try:
        match = pipeline.resolve_author(request.query, request.author, None)
    except UnknownAuthor:
        raise
    except InputError:  # several authors, none named or matched
        if not settings.rag.self_query_llm or which not in ("production", "base"):
            raise
        match = None
    if match is not None:
        _warn_if_nothing_to_retrieve(pipeline.retriever.store, match.user, request.categories)
    who = match.user.full_name if match else None
    pipeline.use_llm(open_answering_llm(settings, who, which) if who else open_llm(settings))
    return pipeline


def _warn_if_nothing_to_retrieve(store: Any, user: Any, categories: Any) -> None:
    """Said before the LLM loads: an answer with no chunk to ground it is the base model's guess, not the
    author's writing (the usual cause: `twin features run` has not run since the import)."""
    from twin_core.features.feature_store import count_chunks
    from twin_core.features.retrieval import why_empty

    if count_chunks(store, user.id, categories) == 0:
        reason = why_empty(store, user.full_name, categories)
        log.warning("nothing to retrieve, the answer will cite no source: %s", reason)
