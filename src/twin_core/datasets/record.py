"""The record phase of a dataset build: validate each dataset (GX), then write it as one artifact version
(parquet per split, ``rejected.parquet`` for rows the checks kept apart, ``metadata.json`` last)."""

from __future__ import annotations

import logging
from collections import Counter
from datetime import UTC, datetime
from typing import Any

from twin_core.datasets import checks, quality
from twin_core.datasets.generate import GENERATION_PROMPT_VERSION
from twin_core.datasets.plan import AuthorBuild, BuildPlan, BuiltRows, Row
from twin_core.datasets.versions import artifact_name, to_parquet
from twin_core.llm.prompt import PROMPT_VERSION

SUMMARY_KEYS = ("forms_used", "largest_form_share", "distinct_instruction_share")


def find_version(store: Any, kind: str, slug: str, chash: str) -> Any:
    """The newest version of ``kind`` and author if its content hash is ``chash``, else None. The newest only:
    it is what training, evaluation and monitoring take as the author's current dataset, so a build going
    back to earlier settings writes a new newest version (and trains) rather than pointing at an old one."""
    name = artifact_name(kind, slug)
    versions = store.versions(name)
    if not versions:
        return None
    av = store.get_version(name, versions[-1])
    return av if av.metadata.get("content_hash") == chash else None


def existing_versions(store: Any, slug: str, hashes: dict[str, str], want_preference: bool) -> dict[str, str]:
    """The versions built from these very inputs, if every wanted kind has one (the preference one only if
    wanted), else {} (the build runs; a kind that has one still gets it back from ``write_version``)."""
    found: dict[str, str] = {}
    for kind in ("instruct", "preference") if want_preference else ("instruct",):
        av = find_version(store, kind, slug, hashes[kind])
        if av is None:
            return {}
        found[kind] = f"{kind}/{slug}/{av.version}"
    return found


def token_stats(rows: list[Row], key: str) -> dict[str, Any]:
    lengths = sorted(max(1, len(r[key]) // 4) for r in rows)  # ~4 characters per token (no tokenizer needed)
    if not lengths:
        return {"count": 0}
    return {
        "count": len(lengths),
        "total": sum(lengths),
        "mean": round(sum(lengths) / len(lengths), 1),
        "max": lengths[-1],
        "estimate": "chars/4",
    }


def split_counts(rows: list[Row]) -> dict[str, Any]:
    return {
        "splits": dict(Counter(r["split"] for r in rows)),
        "categories": {s: dict(Counter(r["category"] for r in rows if r["split"] == s)) for s in ("train", "test")},
    }


def removals(report: dict[str, Any]) -> list[dict[str, Any]]:
    """Every removal of the build as (step, reason, rows, why), in pipeline order."""
    steps = ("dropped", "filters", "deduplication", "decontamination")
    return [
        {"step": step, "reason": reason, "rows": n, "why": quality.WHY.get(reason, reason)}
        for step in steps
        for reason, n in sorted(report.get(step, {}).items())
    ]


def instruct_stats(built: BuiltRows) -> dict[str, Any]:
    rows, forms = built.instruct, built.forms
    total_forms = sum(forms.values())
    return {
        "filters": built.report,
        "removed": removals(built.report),
        "instruction_forms": dict(forms),
        "forms_used": len(forms),
        "largest_form_share": round(max(forms.values()) / total_forms, 4) if total_forms else 0.0,
        "distinct_instruction_share": round(len({r["instruction"] for r in rows}) / len(rows), 4),
        "tokens": {"instruction": token_stats(rows, "instruction"), "answer": token_stats(rows, "answer")},
    }


def common_metadata(plan: BuildPlan, built: BuiltRows) -> dict[str, Any]:
    return {
        "author": plan.author,
        "author_slug": plan.slug,
        "strategy": plan.opts.strategy,
        "seed": plan.opts.seed,
        "model": built.model_version,
        "prompt_version": PROMPT_VERSION,
        "generation_prompt_version": GENERATION_PROMPT_VERSION,
        "build_version": plan.build_version,
        "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "lineage": {"documents": plan.documents},
        "extracts": len(plan.extracts),
        "llm_calls": built.llm_calls,
        "llm_cache_hits": built.llm_cache_hits,
    }


def validated(kind: str, rows: list[Row], min_answer_chars: int, store: Any, prefix: str) -> tuple[list, list, str]:
    """(rows kept, rows kept apart with their reasons, Data Docs URI)."""
    logging.getLogger("great_expectations").setLevel(logging.WARNING)  # its INFO lines drown the task log
    reasons, context, _ = checks.validate(kind, rows, min_answer_chars=min_answer_chars)
    from twin_core.validation.gx_results import publish_data_docs

    docs = publish_data_docs(context, store, prefix)
    kept = [r for r in rows if r["id"] not in reasons]
    rejected = [{**r, "reasons": reasons[r["id"]]} for r in rows if r["id"] in reasons]
    return kept, rejected, docs


def write_version(store: Any, plan: BuildPlan, kind: str, rows: list[Row], meta: dict[str, Any]) -> dict[str, Any]:
    """Validate and store one dataset; returns its version id, whether it is new, and its counts. A version
    of this kind with the same content hash (any, not only the newest) is returned as it is."""
    name = artifact_name(kind, plan.slug)
    chash = plan.hashes[kind]
    same = find_version(store, kind, plan.slug, chash)
    if same is not None:
        return _written(kind, plan.slug, same.version, False, same.metadata)
    prefix = f"{name}/data_docs/{chash[:16]}"
    kept, rejected, docs_uri = validated(kind, rows, plan.datasets.min_answer_chars, store, prefix)
    files = {f"{s}.parquet": to_parquet([r for r in kept if r["split"] == s]) for s in ("train", "test")}
    if rejected:
        files["rejected.parquet"] = to_parquet(rejected)
    meta = {
        **meta,
        "kind": kind,
        "content_hash": chash,
        "lineage": {**meta.get("lineage", {}), "snapshot_hash": chash},
        **split_counts(kept),
        "validation": {"rejected": len(rejected), "data_docs": docs_uri},
    }
    before = store.versions(name)
    av = store.put_version(name, files, meta)
    return _written(kind, plan.slug, av.version, av.version not in before, av.metadata)


def _written(kind: str, slug: str, version: str, created: bool, meta: dict[str, Any]) -> dict[str, Any]:
    counts = {"splits": meta.get("splits", {}), "categories": meta.get("categories", {})}
    return {
        "version": f"{kind}/{slug}/{version}",
        "created": created,
        "stats": {
            "rows": sum(counts["splits"].values()),
            **counts,
            "rejected_by_validation": meta.get("validation", {}).get("rejected", 0),
        },
    }


def record_build(plan: BuildPlan, built: BuiltRows, store: Any, result: AuthorBuild) -> AuthorBuild:
    """Write both datasets (a kind without rows is skipped) and fill ``result``."""
    common = common_metadata(plan, built)
    stats = instruct_stats(built)
    extras = {"instruct": stats, "preference": {"filters": built.report, **built.pairs}}
    for kind, kind_rows in (("instruct", built.instruct), ("preference", built.preference)):
        if not kind_rows:
            result.stats[kind] = {"skipped": "no rows"}
            continue
        written = write_version(store, plan, kind, kind_rows, {**common, **extras[kind]})
        result.versions[kind] = written["version"]
        result.created[kind] = written["created"]
        result.stats[kind] = written["stats"]
    result.stats["filters"] = built.report
    result.stats.update(built.pairs)
    result.stats.update({k: stats[k] for k in SUMMARY_KEYS})
    result.stats["llm_calls"] = built.llm_calls
    return result
