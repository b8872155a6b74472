"""`twin warehouse`: import, export and inspect the data warehouse."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer

from twin_core.cli.protocol import step

app = typer.Typer(help="Import, export and inspect the data warehouse.", no_args_is_help=True)


@app.command("import")
@step("warehouse.import")
def import_(
    paths: list[Path] = typer.Argument(..., help="Backup files (UserDocument.json, ...) or folders holding them."),
) -> dict:
    """Import a warehouse backup (LLM Engineer's Handbook format, or our own export). Idempotent."""
    from twin_core.progress import progress
    from twin_core.settings import get_settings
    from twin_core.stores.warehouse import open_warehouse
    from twin_core.stores.warehouse_io import import_paths

    report = import_paths(open_warehouse(get_settings()), paths, progress=progress).as_dict()
    if report["rejected"]:
        report["status"] = "partial"
    return report


@app.command("export")
@step("warehouse.export")
def export(out: Path = typer.Argument(..., help="Folder to write the backup files into.")) -> dict:
    """Export the warehouse as backup files (re-importable)."""
    from twin_core.settings import get_settings
    from twin_core.stores.warehouse import open_warehouse
    from twin_core.stores.warehouse_io import export_dir

    counts = export_dir(open_warehouse(get_settings()), out)
    return {"out": str(out), "counts": counts}


@app.command("stats")
@step("warehouse.stats")
def stats() -> dict:
    """Counts per category and per author."""
    from rich.console import Console

    from twin_core.settings import get_settings
    from twin_core.stores.warehouse import open_warehouse

    data = open_warehouse(get_settings()).stats()
    Console(stderr=True).print(stats_table(data))
    return data


@app.command("authors")
@step("warehouse.authors")
def authors() -> dict:
    """The authors' full names, sorted (what the feature pipeline maps over)."""
    from twin_core.settings import get_settings
    from twin_core.stores.warehouse import open_warehouse

    names = sorted(u.full_name for u in open_warehouse(get_settings()).users())
    return {"authors": names, "count": len(names)}


def stats_table(data: dict, title: str = "warehouse") -> Any:
    """A rich table of ``Warehouse.stats()``: one row per author, one column per category."""
    from rich.table import Table

    table = Table(title=title)
    table.add_column("author")
    cats = list(data["categories"])
    for cat in cats:
        table.add_column(cat, justify="right")
    for author, counts in sorted(data["authors"].items()):
        table.add_row(author, *(str(counts[c]) for c in cats))
    table.add_row("[bold]total[/bold]", *(str(data["categories"][c]["total"]) for c in cats))
    return table
