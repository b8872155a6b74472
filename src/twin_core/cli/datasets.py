"""`twin datasets`: build, list, show and export instruction and preference datasets."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import typer

from twin_core.cli.protocol import step

log = logging.getLogger(__name__)
app = typer.Typer(help="Build instruction and preference datasets.", no_args_is_help=True)

_VERSION_HELP = "Dataset version: instruct|preference/<author_slug>/vNNNN (see `twin datasets list`)."


@app.command("build")
@step("datasets.build")
def build(
    author: str = typer.Option(
        None, "--author", help="Only this author (full name, slug or id); default: every author."
    ),
    strategy: str = typer.Option(None, "--strategy", help="extractive (default, no LLM) or llm."),
    seed: int = typer.Option(None, "--seed", help="Seed of instruction forms and sampling (TWIN_DATASETS_SEED)."),
    max_extracts: int = typer.Option(None, "--max-extracts", min=0, help="Extracts per author (0 = all)."),
    max_rejected: int = typer.Option(
        None, "--max-rejected", min=0, help="Preference candidates per author (0 = no pairs)."
    ),
    pair_kinds: str = typer.Option(
        "model,other_author",
        "--pair-kinds",
        help="Pairs per candidate: model (a length-matched model answer, one model call each) and/or "
        "other_author (another author's nearest passage, no model call).",
    ),
) -> dict:
    """Build each author's instruct and preference datasets from the cleaned documents.

    An unchanged corpus gives the existing versions (no model call). Without --author, an author with nothing to
    build from is skipped with its reason (status partial, exit 3) and the others are built.

    Example: twin datasets build --author "Ada Quillfeather" --max-rejected 0 (instruct only, no model call)
    """
    from twin_core.cli.authors import require_author
    from twin_core.datasets.build import BuildOptions
    from twin_core.errors import InputError
    from twin_core.settings import get_settings
    from twin_core.stores.warehouse import open_warehouse

    settings = get_settings()
    ds = settings.datasets
    opts = BuildOptions(
        strategy=strategy or ds.strategy,
        seed=ds.seed if seed is None else seed,
        max_extracts=ds.max_extracts if max_extracts is None else max_extracts,
        max_rejected=ds.max_rejected if max_rejected is None else max_rejected,
        pair_kinds=_pair_kinds(pair_kinds),
        min_held_out=_eval_min_rows(settings),
    )
    if opts.strategy not in ("extractive", "llm"):
        raise InputError(f"--strategy {opts.strategy!r}: expected extractive or llm")
    known = [u.full_name for u in open_warehouse(settings).users()]
    if not known:
        raise InputError("no author in the warehouse: crawl or import documents first")
    author = require_author(settings, author)  # a slug or id as the full name the build keys on
    results, skipped = _build_each(settings, [author] if author else known, opts, skip_empty=not author)
    created = any(any(r["created"].values()) for r in results)
    out = {
        "status": "partial" if skipped else "ok" if created else "unchanged",
        "strategy": opts.strategy,
        "authors": results,
        "versions": {r["author_slug"]: r["versions"] for r in results},
    }
    warnings = [w for r in results for w in r.get("warnings", [])]  # e.g. too few held-out rows to evaluate
    if warnings:
        out["warnings"] = warnings
    return {**out, "skipped": skipped} if skipped else out


def _eval_min_rows(settings: Any) -> int | None:
    """``samples.min_rows`` of the evaluation config, for the build's held-out warning; None if unreadable."""
    try:
        from twin_core.evaluation.config import load_eval_config

        return load_eval_config(settings).min_rows
    except Exception:  # noqa: BLE001 - only the wording of a warning depends on it
        return None


def _build_each(settings: Any, authors: list[str], opts: Any, *, skip_empty: bool) -> tuple[list[dict], list[dict]]:
    """Each author's build; with ``skip_empty``, an author with nothing to build from (bad input: no cleaned
    documents yet) is skipped with its reason, unless every author is."""
    from twin_core.datasets.build import build_author
    from twin_core.datasets.rejected_answers import GenerationModel
    from twin_core.errors import InputError
    from twin_core.progress import progress

    results, skipped = [], []
    for name in authors:
        try:
            built = build_author(settings, name, opts, open_model=GenerationModel(settings, name), progress=progress)
        except InputError as exc:
            if not skip_empty:
                raise
            log.warning("datasets build: skipped %s: %s", name, exc)
            skipped.append({"author": name, "error": str(exc)})
            continue
        results.append(built.as_dict())
    if not results:
        raise InputError("; ".join(f"{s['author']}: {s['error']}" for s in skipped))
    return results, skipped


@app.command("list")
@step("datasets.list")
def list_(kind: str = typer.Option(None, "--kind", help="instruct or preference.")) -> dict:
    """Every dataset version id."""
    from twin_core.datasets.versions import KINDS, list_versions
    from twin_core.errors import InputError
    from twin_core.settings import get_settings

    if kind is not None and kind not in KINDS:
        raise InputError(f"--kind {kind!r}: expected {' or '.join(KINDS)}")
    versions = list_versions(get_settings(), kind)
    for v in versions:
        typer.echo(v, err=True)
    return {"versions": versions}


@app.command("show")
@step("datasets.show")
def show(version: str = typer.Argument(..., help=_VERSION_HELP)) -> dict:
    """A version's stats and lineage.

    Example: twin datasets show instruct/ada-quillfeather/v0001
    """
    from twin_core.datasets.versions import load_dataset_version
    from twin_core.settings import get_settings

    v = load_dataset_version(get_settings(), version)
    meta = dict(v.metadata)
    lineage = meta.pop("lineage", {})
    meta["lineage"] = {"documents": len(lineage.get("documents", [])), "snapshot_hash": lineage.get("snapshot_hash")}
    meta["lineage_documents"] = lineage.get("documents", [])
    return {"version": v.version_id, "metadata": meta}


@app.command("export")
@step("datasets.export")
def export(
    version: str = typer.Argument(..., help=_VERSION_HELP),
    dest: Path = typer.Argument(..., help="Folder to write (Hugging Face datasets layout)."),
    force: bool = typer.Option(
        False, "--force", help="Write into a non-empty folder that is not an earlier export (replaces README.md)."
    ),
) -> dict:
    """Write a version as parquet per split plus a dataset card (README.md), in the Hugging Face layout.

    Loadable with `datasets.load_dataset(DIR)`. The folder must be new, empty or an earlier export (exit 3
    otherwise, nothing written), unless --force.

    Example: twin datasets export instruct/ada-quillfeather/v0001 ./ada-instruct
    """
    from twin_core.datasets.export import export_version
    from twin_core.settings import get_settings

    return export_version(get_settings(), version, dest, force=force)


def _pair_kinds(value: str) -> tuple[str, ...]:
    from twin_core.datasets.plan import PAIR_KINDS
    from twin_core.errors import InputError

    kinds = tuple(k.strip() for k in value.split(",") if k.strip())
    unknown = sorted(set(kinds) - set(PAIR_KINDS))
    if unknown or not kinds:
        raise InputError(f"--pair-kinds {value!r}: expected one or both of {', '.join(PAIR_KINDS)}")
    return tuple(k for k in PAIR_KINDS if k in kinds)
