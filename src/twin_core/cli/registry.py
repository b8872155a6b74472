"""`twin registry`: list model versions, show one, and move them between stages."""

from __future__ import annotations

from typing import Any

import typer

from twin_core.cli.protocol import step

app = typer.Typer(help="List and promote model versions.", no_args_is_help=True)


def _summary(mv: Any) -> dict[str, Any]:
    return {
        "ref": mv.ref,
        "author": mv.author,
        "stage": mv.stage,
        "canary_percent": mv.canary_percent,
        "created_at": mv.created_at,
        "base_model": mv.metadata.get("base_model"),
        "kind": mv.metadata.get("kind"),
        "dataset_versions": mv.metadata.get("dataset_versions"),
        "storage_uri": mv.storage_uri,
        "rollback_order": mv.rollback_order,  # 1: the next rollback restores it; None: only a promotion
        "rolled_back": mv.rolled_back.model_dump(mode="json") if mv.rolled_back else None,  # when, why
    }


def _note(mv: Any) -> str:
    if mv.rolled_back:
        return mv.rolled_back.reason
    return f"rollback #{mv.rollback_order}" if mv.rollback_order else ""


def _registry() -> Any:
    from twin_core.settings import get_settings
    from twin_core.stores.registry import open_registry

    return open_registry(get_settings())


@app.command("list")
@step("registry.list")
def list_(author: str = typer.Option(None, "--author", help="Only this author's versions (full name).")) -> dict:
    """Every model version with its stage, which rollback restores it and, rolled back, why (a table on stderr)."""
    from rich.console import Console
    from rich.table import Table

    from twin_core.cli.authors import require_author
    from twin_core.settings import get_settings

    require_author(get_settings(), author)
    versions = _registry().list(author)
    table = Table("ref", "stage", "kind", "base model", "dataset", "registered", "rollback")
    for mv in versions:
        stage = f"canary {mv.canary_percent}%" if mv.stage == "canary" else mv.stage
        datasets = ", ".join(mv.metadata.get("dataset_versions") or [])
        created = mv.created_at.strftime("%Y-%m-%d %H:%M") if mv.created_at else ""
        table.add_row(
            mv.ref,
            stage,
            str(mv.metadata.get("kind", "")),
            str(mv.metadata.get("base_model", "")),
            datasets,
            created,
            _note(mv),
        )
    Console(stderr=True).print(table)
    return {"versions": [_summary(mv) for mv in versions], "count": len(versions)}


@app.command("show")
@step("registry.show")
def show(ref: str = typer.Argument(..., help="Model version: <author_slug>/vNNNN.")) -> dict:
    """One version: stage, lineage, metrics, Comet key, storage URI and its stage history."""
    from twin_core.stores.registry import describe

    return {"model": describe(_registry().get(ref))}


@app.command("promote")
@step("registry.promote")
def promote(
    ref: str = typer.Argument(..., help="Model version: <author_slug>/vNNNN."),
    stage: str = typer.Option(..., "--stage", help="candidate, canary, production or archived."),
    percent: int = typer.Option(None, "--percent", help="Canary share of the author's traffic (1-99, default 10)."),
    reason: str = typer.Option("manual promotion", "--reason", help="Why (kept in the history)."),
) -> dict:
    """Move a version to a stage. Promoting to production archives the previous production."""
    reg = _registry()
    before = reg.get(ref)
    mv = reg.set_stage(ref, stage, reason, canary_percent=percent)
    result: dict[str, Any] = {"model": _summary(mv), "from_stage": before.stage}
    if len(mv.history) == len(before.history):  # the stage it had (archived: and no rollback target)
        result["status"] = "unchanged"
    return result


@app.command("rollback")
@step("registry.rollback")
def rollback(
    author: str = typer.Option(..., "--author", help="Author full name (or slug) whose production rolls back."),
    reason: str = typer.Option("manual rollback", "--reason", help="Why (kept in the history)."),
) -> dict:
    """Bring back the previous production version; the current one is archived and leaves the production
    stack (only a promotion brings it back). Versions archived with `twin registry archive` are never
    brought back; none left: exit 3, nothing changed."""
    reg = _registry()
    current = reg.production(author)
    mv = reg.rollback(author, reason)
    return {"model": _summary(mv), "restored": mv.ref, "replaced": current.ref if current else None}


@app.command("archive")
@step("registry.archive")
def archive(
    ref: str = typer.Argument(..., help="Model version: <author_slug>/vNNNN."),
    reason: str = typer.Option("manual archive", "--reason", help="Why (kept in the history)."),
) -> dict:
    """Archive a version (archiving the production leaves the author on the base model); rollback never
    brings an archived-on-purpose version back."""
    reg = _registry()
    before = reg.get(ref)
    mv = reg.archive(ref, reason)
    result: dict[str, Any] = {"model": _summary(mv), "from_stage": before.stage}
    if len(mv.history) == len(before.history):  # archived and no rollback target already
        result["status"] = "unchanged"
    return result
