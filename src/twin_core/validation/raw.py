"""`twin validate raw`: run the suites over the warehouse, quarantine failures, publish Data Docs.

Quarantine is a flag on the document (kept, never deleted; excluded downstream by the warehouse's
default queries). A quarantined document that passes again is released. The step fails only when
the share of failing documents exceeds ``TWIN_VALIDATE_MAX_FAILURE_RATIO``.

A crawled document stays pending (every crawl reports it created or updated) until a validation has
seen it: the last write of a validation that did not fail settles exactly the documents that were
pending when it read them, with the content it read (``Warehouse.settle_documents``). A validation
killed before that, or one that failed, leaves them pending, so the next crawl triggers validation again.
"""

from __future__ import annotations

import logging
import os
import uuid
from datetime import UTC, datetime
from typing import Any

from twin_core.domain.documents import Category
from twin_core.progress import ProgressFactory, silent
from twin_core.settings import Settings
from twin_core.stores.artifacts import open_artifact_store
from twin_core.stores.warehouse import open_warehouse
from twin_core.validation.frames import SUITE_FREE, category_frame
from twin_core.validation.gx_results import failing_rows, publish_data_docs, run_suite
from twin_core.validation.suites import build_suite

log = logging.getLogger(__name__)
ARTIFACT_PREFIX = "validation/raw"


def _gx_context() -> tuple[Any, Any]:
    """An ephemeral GX context (no analytics, progress bars only when the CLI shows them) and its pandas source."""
    os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")  # never phone home from a pipeline step
    import great_expectations as gx

    context = gx.get_context(mode="ephemeral")
    # GX draws a bar per metric, nested under ours: `twin validate raw` shows one bar (and none with TWIN_PROGRESS=0)
    from great_expectations.data_context.types.base import ProgressBarsConfig

    context.variables.progress_bars = ProgressBarsConfig(globally=False)
    return context, context.data_sources.add_pandas("warehouse")


def _apply_quarantine(
    warehouse: Any, category: Category, frame: Any, reasons: dict[str, list[str]], summary: dict
) -> int:
    """Write the quarantine flags that changed (a re-run writes nothing); returns the failing documents."""
    for row in frame.itertuples(index=False):
        new = reasons.get(row.id, [])
        if new == list(row.previous_reasons) and bool(new) == bool(row.was_quarantined):
            continue  # unchanged: no write, so a re-run leaves the warehouse as it was
        warehouse.set_quarantine(category, row.id, new)
        entry = {"category": category.value, "id": row.id, "link": row.link}
        if new:
            summary["quarantined"].append({**entry, "reasons": new})
        else:
            summary["released"].append(entry)
    return sum(1 for doc_id in frame["id"] if reasons.get(doc_id))


def validate_raw(
    settings: Settings, *, max_failure_ratio: float | None = None, progress: ProgressFactory = silent
) -> dict[str, Any]:
    threshold = settings.validation.max_failure_ratio if max_failure_ratio is None else max_failure_ratio
    warehouse = open_warehouse(settings)
    # opened before any quarantine flag is written: a step that cannot keep its summary changes nothing
    store = open_artifact_store(settings)
    known_authors = sorted(u.id for u in warehouse.users())
    run_id = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ") + "-" + uuid.uuid4().hex[:8]
    context, source = _gx_context()

    summary: dict[str, Any] = {"run_id": run_id, "categories": {}, "quarantined": [], "released": []}
    total = failed = 0
    seen: dict[Category, dict[str, str]] = {}  # id -> content validated, of the pending documents: settled last
    for category in progress(list(Category), desc="validate", unit="category"):
        pending = warehouse.pending_documents(category)  # before the frame: one pending only later stays pending
        frame = category_frame(warehouse, category)
        # the rows really validated, with the content they had (a document the read missed is not settled)
        seen[category] = {i: h for i, h in zip(frame["id"], frame["content_hash"], strict=True) if i in pending}
        if frame.empty:
            summary["categories"][category.value] = {"documents": 0, "failed": 0, "success": True}
            continue
        suite = build_suite(category, settings, known_authors)
        result = run_suite(context, source, category.value, suite, frame.drop(columns=SUITE_FREE))
        n_failed = _apply_quarantine(warehouse, category, frame, failing_rows(result), summary)
        total += len(frame)
        failed += n_failed
        summary["categories"][category.value] = {
            "documents": len(frame),
            "failed": n_failed,
            "success": bool(result.success),
        }
        log.info("validate %s: %d documents, %d failing", category.value, len(frame), n_failed)

    ratio = failed / total if total else 0.0
    summary.update(
        documents=total,
        failed=failed,
        failure_ratio=round(ratio, 4),
        max_failure_ratio=threshold,
        quarantined_total=sum(warehouse.count(c, {"quarantined": True}) for c in Category),
    )
    summary["data_docs"] = publish_data_docs(context, store, f"{ARTIFACT_PREFIX}/{run_id}/data_docs") if total else None
    store.put_json(f"{ARTIFACT_PREFIX}/{run_id}/summary.json", summary)
    if ratio > threshold:
        summary["status"] = "failed"
        summary["error"] = f"{failed}/{total} documents failed validation (ratio {ratio:.2f} > {threshold})"
        return summary  # nothing settled: the next crawl reports the documents again, and validation reruns
    # last: the flags and the summary are stored, so these documents have been validated
    settled = sum(warehouse.settle_documents(category, ids) for category, ids in seen.items())
    log.info("validate: %d crawled document(s) settled (a re-crawl finds them unchanged)", settled)
    return summary
