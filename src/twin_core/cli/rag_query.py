"""`twin rag query "..."`: the whole RAG in-process (retrieval, prompt, local or remote LLM)."""

from __future__ import annotations

import logging
import sys

import typer

from twin_core.cli.protocol import step

log = logging.getLogger(__name__)


@step("rag.query")
def command(
    query: str = typer.Argument(..., help="The question to ask the twin."),
    author: str = typer.Option(None, "--author", help="Author whose content to use (default: self-query)."),
    max_new_tokens: int = typer.Option(None, "--max-new-tokens", help="Answer length cap in tokens."),
    category: list[str] = typer.Option(None, "--category", help="Restrict to articles, posts or repositories."),
) -> dict:
    """Answer a question with RAG over the author's own content, and print the answer and its sources."""

    from twin_core.cli.authors import require_author
    from twin_core.domain.documents import Category
    from twin_core.inference.pipeline import RAGRequest, open_pipeline, validate_request
    from twin_core.settings import get_settings

    settings = get_settings()
    request = RAGRequest(query, author, max_new_tokens, [Category.parse(c) for c in category] if category else None)
    # bad input is refused before the embedding model and the LLM load (seconds), as `rag search` does
    validate_request(request, settings)
    require_author(settings, author)
    result = open_pipeline(settings).answer(request, transport="cli")
    print(result.answer, file=sys.stderr)  # for the reader; stdout carries the result line only
    for src in result.sources:
        print(f"  - {src['link']} ({src['category']}, score {src['score']})", file=sys.stderr)
    return result.as_dict()
