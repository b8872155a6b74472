"""`twin features`: clean, chunk and embed the warehouse into the feature store (Qdrant)."""

from __future__ import annotations

import typer

from twin_core.cli.protocol import step

app = typer.Typer(help="Clean, chunk and embed documents into the feature store.", no_args_is_help=True)


@app.command("run")
@step("features.run")
def run(
    full: bool = typer.Option(False, "--full", help="Rebuild every document, not only new or changed ones."),
    author: str = typer.Option(None, "--author", help="Only this author's documents (full name, slug or id)."),
) -> dict:
    """Featurize new and changed documents; remove the features of deleted or quarantined ones."""
    from twin_core.features.pipeline import run_features
    from twin_core.progress import progress
    from twin_core.settings import get_settings

    result = run_features(get_settings(), full=full, author=author, progress=progress)
    if result["processed"] == 0 and result["deleted"] == 0:
        result["status"] = "unchanged"
    return result
