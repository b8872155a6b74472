"""`twin rag`: retrieval and question answering from the command line.

`search` belongs to the feature stage (twin_core.cli.rag_search), `query` to the inference stage
(twin_core.cli.rag_query); each is "not yet available" until its module exists.
"""

from __future__ import annotations

import importlib

import typer

from twin_core.cli.placeholder import PLACEHOLDER_CONTEXT, placeholder_command

app = typer.Typer(help="Search the feature store and ask the twin from the command line.", no_args_is_help=True)

for _name, _module, _help in (
    ("search", "twin_core.cli.rag_search", "Vector search over the author's chunks."),
    ("query", "twin_core.cli.rag_query", "Answer a question with RAG, in-process."),
):
    try:
        app.command(_name, help=_help)(importlib.import_module(_module).command)
    except ModuleNotFoundError as exc:
        if exc.name != _module:
            raise
        app.command(_name, help=f"(not yet available) {_help}", context_settings=PLACEHOLDER_CONTEXT)(
            placeholder_command(f"rag {_name}")
        )
