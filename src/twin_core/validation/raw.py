"""`twin validate raw`: run the suites over the warehouse, quarantine failures, publish Data Docs.

Quarantine is a flag on the document (kept, never deleted; excluded downstream by the warehouse's
default queries). A quarantined document that passes again is released. The step fails only when
the share of failing documents exceeds ``TWIN_VALIDATE_MAX_FAILURE_RATIO``: of the documents crawls created
or changed since the last validation (pending) when there are any, which is what this validation decides
about (documents quarantined long ago neither fail every later validation nor dilute a broken crawl), else
of all documents. Pending documents failing as an earlier validation found them (quarantined, the same reasons)
are left out of the pending sample: reported once, a document crawled alone would otherwise fail every later
validation. The result's ``gate`` states that decision with its sample, its size, the share's Wilson 95 %
interval and the known failures left out, and holds (decides nothing, ratio null) when there is no document
to judge.

A crawled document stays pending (every crawl reports it created or updated) until a validation has
seen it: the last write of a validation that did not fail settles exactly the documents that were
pending when it read them, with the content it read (``Warehouse.settle_documents``). A validation
killed before that, or one that failed, leaves them pending, so the next crawl triggers validation again.
"""

from __future__ import annotations

import logging
import os
import uuid
from collections import Counter
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


def wilson_ci95(k: int, n: int) -> list[float]:
    """The Wilson score 95 % interval of the share ``k / n`` (n > 0; statsmodels' ``proportion_confint``, as
    the evaluation and monitoring intervals), rounded to 4 places."""
    from statsmodels.stats.proportion import proportion_confint

    low, high = proportion_confint(k, n, alpha=0.05, method="wilson")
    return [round(max(0.0, float(low)), 4), round(min(1.0, float(high)), 4)]


def failure_gate(failed: int, total: int, threshold: float, sample: str = "documents") -> dict[str, Any]:
    """The failure-ratio gate: ``pass`` or ``fail`` (the observed share against ``threshold``), stated with the
    sample size and the share's 95 % interval; ``hold`` when no document was validated (no data, no verdict)."""
    gate: dict[str, Any] = {"sample": sample, "n": total, "failed": failed, "max_failure_ratio": threshold}
    if total == 0:
        return {**gate, "failure_ratio": None, "ci95": None, "decision": "hold", "reason": "no documents to validate"}
    ratio, ci = failed / total, wilson_ci95(failed, total)
    decision = "fail" if ratio > threshold else "pass"
    reason = (
        f"{failed}/{total} {sample} failed validation: ratio {ratio:.2f} (95% CI {ci[0]:.2f}-{ci[1]:.2f}) "
        f"{'>' if decision == 'fail' else '<='} max {threshold}"
    )
    return {**gate, "failure_ratio": round(ratio, 4), "ci95": ci, "decision": decision, "reason": reason}


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
            log.warning("quarantined %s %s: %s", category.value, row.link, "; ".join(new))
        else:
            summary["released"].append(entry)
            log.info("released %s %s: it passes now", category.value, row.link)
    return sum(1 for doc_id in frame["id"] if reasons.get(doc_id))


def _validate_category(
    warehouse: Any, category: Category, settings: Settings, known_authors: list[str], gx: tuple[Any, Any], summary: dict
) -> tuple[dict[str, str], Counter[str]]:
    """Validate one category: its quarantine flags written, its summary entry. Returns the pending documents it
    validated (id -> the content hash read) and its counts (documents, failed, pending, pending failed, pending
    known failures)."""
    pending = warehouse.pending_documents(category)  # before the frame: one pending only later stays pending
    frame = category_frame(warehouse, category)
    # the rows really validated, with the content they had (a document the read missed is not settled)
    seen = {i: h for i, h in zip(frame["id"], frame["content_hash"], strict=True) if i in pending}
    if frame.empty:  # nothing validated: no verdict
        summary["categories"][category.value] = {"documents": 0, "failed": 0, "success": None}
        return seen, Counter()
    suite = build_suite(category, settings, known_authors)
    result = run_suite(gx[0], gx[1], category.value, suite, frame.drop(columns=SUITE_FREE))
    reasons = failing_rows(result)
    n_failed = _apply_quarantine(warehouse, category, frame, reasons, summary)
    summary["categories"][category.value] = {
        "documents": len(frame),
        "failed": n_failed,
        "success": bool(result.success),
    }
    log.info("validate %s: %d documents, %d failing", category.value, len(frame), n_failed)
    known = _known_failures(frame, reasons) & seen.keys()
    counts = Counter(documents=len(frame), failed=n_failed, pending=len(seen), pending_known=len(known))
    counts.update(pending_failed=sum(1 for i in seen if reasons.get(i)))
    return seen, counts


def _known_failures(frame: Any, reasons: dict[str, list[str]]) -> set[str]:
    """The documents failing as an earlier validation already found them (quarantined, the same reasons): no
    new evidence, and a failure that was reported once. Counted in the gate, a document crawled alone and
    quarantined would fail every later validation (it stays pending while validation fails)."""
    return {
        row.id
        for row in frame.itertuples(index=False)
        if reasons.get(row.id) and row.was_quarantined and list(row.previous_reasons) == reasons[row.id]
    }


def _gate(counts: Counter[str], threshold: float) -> dict[str, Any]:
    """The gate over what the crawls brought since the last validation (pending) when any, else over every
    document. Pending documents failing as an earlier validation found them are left out of the pending sample
    (``known_failures``): with none left, every document is judged, where one document crawled alone and
    quarantined failed every later validation."""
    fresh = counts["pending"] - counts["pending_known"]
    if fresh:  # what this validation decides about
        failed = counts["pending_failed"] - counts["pending_known"]
        gate = failure_gate(failed, fresh, threshold, "new or changed documents")
    else:
        gate = failure_gate(counts["failed"], counts["documents"], threshold)
    return {**gate, "known_failures": counts["pending_known"]}


def validate_raw(
    settings: Settings, *, max_failure_ratio: float | None = None, progress: ProgressFactory = silent
) -> dict[str, Any]:
    threshold = settings.validation.max_failure_ratio if max_failure_ratio is None else max_failure_ratio
    warehouse = open_warehouse(settings)
    # opened before any quarantine flag is written: a step that cannot keep its summary changes nothing
    store = open_artifact_store(settings)
    known_authors = sorted(u.id for u in warehouse.users())
    run_id = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ") + "-" + uuid.uuid4().hex[:8]
    gx = _gx_context()

    summary: dict[str, Any] = {"run_id": run_id, "categories": {}, "quarantined": [], "released": []}
    counts: Counter[str] = Counter()
    seen: dict[Category, dict[str, str]] = {}  # id -> content validated, of the pending documents: settled last
    for category in progress(list(Category), desc="validate", unit="category"):
        seen[category], n = _validate_category(warehouse, category, settings, known_authors, gx, summary)
        counts.update(n)

    total, failed = counts["documents"], counts["failed"]
    gate = _gate(counts, threshold)
    summary.update(
        documents=total,
        failed=failed,
        failure_ratio=round(failed / total, 4) if total else None,
        max_failure_ratio=threshold,
        gate=gate,
        quarantined_total=sum(warehouse.count(c, {"quarantined": True}) for c in Category),
    )
    summary["data_docs"] = publish_data_docs(gx[0], store, f"{ARTIFACT_PREFIX}/{run_id}/data_docs") if total else None
    store.put_json(f"{ARTIFACT_PREFIX}/{run_id}/summary.json", summary)
    if gate["decision"] == "fail":
        summary["status"] = "failed"
        summary["error"] = gate["reason"]
        log.error("validate: %s; Data Docs: %s", gate["reason"], summary["data_docs"])
        return summary  # nothing settled: the next crawl reports the documents again, and validation reruns
    log.info("validate: gate %s: %s; Data Docs: %s", gate["decision"], gate["reason"], summary["data_docs"])
    # last: the flags and the summary are stored, so these documents have been validated
    settled = sum(warehouse.settle_documents(category, ids) for category, ids in seen.items())
    log.info("validate: %d crawled document(s) settled (a re-crawl finds them unchanged)", settled)
    return summary
