"""`twin rag`: retrieval (`search`, the feature stage's) and question answering (`query`, in-process RAG)."""

from __future__ import annotations

import typer

from twin_core.cli import rag_query, rag_search

app = typer.Typer(help="Search the feature store and ask the twin from the command line.", no_args_is_help=True)
# short_help (their line in `twin rag --help`), never help: that would replace their docstrings on their own pages
app.command("search", short_help="Vector search over the author's chunks.")(rag_search.command)
app.command("query", short_help="Answer a question with RAG, in-process.")(rag_query.command)
