"""`twin registry`: list model versions, show one, and move them between stages."""

from __future__ import annotations

from typing import Any

import typer

from twin_core.cli.protocol import step
from twin_core.cli.versions import known_version

app = typer.Typer(help="List, show, promote, archive and roll back model versions.", no_args_is_help=True)

_REF_HELP = "Model version: <author_slug>/vNNNN (see `twin registry list`)."


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


def _check_stage(stage: str, percent: int | None) -> None:
    """--stage and --percent named when wrong, before the version is looked up (its error would come first)."""
    from twin_core.errors import InputError
    from twin_core.stores.registry import STAGES

    if stage not in STAGES:
        raise InputError(f"--stage {stage!r}: expected {', '.join(STAGES[:-1])} or {STAGES[-1]}")
    if percent is not None and stage != "canary":
        raise InputError(f"--percent {percent}: a canary's share of the traffic, only with --stage canary")


def _check_author(reg: Any, author: str) -> None:
    """An author without model versions (a typo) named with the known ones, not "nothing to roll back" (read
    only when the rollback failed: it lists every version of every author)."""
    from twin_core.domain.ids import slugify
    from twin_core.errors import InputError

    known = sorted({mv.author for mv in reg.list()})
    if slugify(author) not in {slugify(name) for name in known}:
        raise InputError(
            f"--author {author!r}: no model version of this author in the registry "
            f"(known: {', '.join(known) or 'none'})"
        )


def _registry() -> Any:
    from twin_core.settings import get_settings
    from twin_core.stores.registry import open_registry

    return open_registry(get_settings())


@app.command("list")
@step("registry.list")
def list_(
    author: str = typer.Option(None, "--author", help="Only this author's versions (full name, slug or id)."),
) -> dict:
    """Every model version with its stage, which rollback restores it and, rolled back, why (a table on stderr)."""
    from rich.console import Console
    from rich.table import Table

    from twin_core.cli.authors import require_author
    from twin_core.settings import get_settings

    versions = _registry().list(require_author(get_settings(), author))  # a slug or id as the full name
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
def show(ref: str = typer.Argument(..., help=_REF_HELP)) -> dict:
    """One version: stage, lineage, metrics, Comet key, storage URI and its stage history.

    Example: twin registry show ada-quillfeather/v0001
    """
    from twin_core.stores.registry import describe

    return {"model": describe(known_version(_registry(), ref, "ref"))}


@app.command("promote")
@step("registry.promote")
def promote(
    ref: str = typer.Argument(..., help=_REF_HELP),
    stage: str = typer.Option(..., "--stage", help="candidate, canary, production or archived."),
    percent: int = typer.Option(
        None, "--percent", min=1, max=99, help="With --stage canary: its share of the author's traffic (default 10)."
    ),
    reason: str = typer.Option("manual promotion", "--reason", help="Why (kept in the history)."),
) -> dict:
    """Move a version to a stage. Promoting to production archives the previous production.

    Example: twin registry promote ada-quillfeather/v0002 --stage canary --percent 20
    """
    _check_stage(stage, percent)
    reg = _registry()
    before = known_version(reg, ref, "ref")
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
    """Bring back an author's previous production version; the current one is archived.

    The current one leaves the production stack (only a promotion brings it back). Versions archived with
    `twin registry archive` are never brought back; none left: exit 3, nothing changed.

    Example: twin registry rollback --author "Ada Quillfeather" --reason "answers regressed"
    """
    from twin_core.errors import InputError

    reg = _registry()
    current = reg.production(author)
    try:
        mv = reg.rollback(author, reason)
    except InputError:
        _check_author(reg, author)  # nothing to roll back: say so for an author the registry does not know
        raise
    return {"model": _summary(mv), "restored": mv.ref, "replaced": current.ref if current else None}


@app.command("archive")
@step("registry.archive")
def archive(
    ref: str = typer.Argument(..., help=_REF_HELP),
    reason: str = typer.Option("manual archive", "--reason", help="Why (kept in the history)."),
) -> dict:
    """Archive a version: no rollback ever brings it back.

    Archiving the production leaves the author on the base model.

    Example: twin registry archive ada-quillfeather/v0001 --reason retired
    """
    reg = _registry()
    before = known_version(reg, ref, "ref")
    mv = reg.archive(ref, reason)
    result: dict[str, Any] = {"model": _summary(mv), "from_stage": before.stage}
    if len(mv.history) == len(before.history):  # archived and no rollback target already
        result["status"] = "unchanged"
    return result
