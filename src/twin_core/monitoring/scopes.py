"""The data each scope compares: the window's requests against recent traffic (previous or pinned
baseline window) for the alerting check, or against the training data for the informational report.
A side below the minimum number of rows is held ("skipped" with the counts), never scored.

``outcome`` is ``ok`` or ``error`` (a server failure: ``error``, ``unavailable`` or any status but the
client's own) and missing for ``rejected`` (the client's 4xx) and ``cancelled`` (the client went away):
the server error rate counts neither. A missing retrieval score or latency stays missing (NaN): each
signal is scored on, and reports, the values it has (``measures.py``). ``retrieved`` is the number of
chunks the request kept (0 when retrieval found nothing or failed): the retrieval coverage."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from twin_core.domain.inference import InferenceLog, QueryEmbedding, UnreadableLogRow
from twin_core.errors import InputError
from twin_core.monitoring.evidently_metrics import ScopeData
from twin_core.monitoring.reference import documents, training_reference
from twin_core.monitoring.windows import Window

MIN_DOCUMENTS = 5
TEXT_SAMPLE = 2000  # rows per side for the text descriptors: a few thousand pin a distribution down
READ_BATCH = 100_000  # one query per window: paging with skip re-reads the embedded store per page
DOCUMENT_CHARS = 2000
_COLUMNS = ["query", "answer", "retrieval_score", "latency_ms", "outcome", "retrieved"]
CLIENT_STATUSES = frozenset({"rejected", "cancelled"})  # the client's doing: not a server failure


def outcome(status: str) -> str | None:
    """``ok``, ``error`` (a server failure) or None (the client's doing: not counted)."""
    if status == "ok":
        return "ok"
    return None if status in CLIENT_STATUSES else "error"


def read_logs(warehouse: Any, window: Window, author: str | None) -> list[InferenceLog]:
    """The window's request log rows in time order. A row that is not an ``InferenceLog`` fails the check
    as bad input naming it (its ``_id``, from the warehouse's ``UnreadableLogRow``) and where it is: dropping
    it would score a sample nobody chose, and a traceback says nothing of which row (nothing is written:
    re-run once the row is fixed or removed)."""
    from pydantic import ValidationError

    rows: list[InferenceLog] = []
    try:
        rows.extend(warehouse.inference_logs(window.start, window.end, author, batch_size=READ_BATCH))
    except (UnreadableLogRow, ValidationError) as exc:  # a bug elsewhere stays a traceback, not "unreadable"
        row_id = getattr(exc, "row_id", None)
        which = f"row {row_id!r}" if row_id is not None else "row"
        after = f"after the row {rows[-1].id!r}" if rows else "the first row"
        raise InputError(
            f"the request log has an unreadable {which} in {window.start.isoformat()} .. {window.end.isoformat()} "
            f"(row {len(rows) + 1} in time order, {after}): {_why(exc)}; fix or delete it, then re-run"
        ) from None
    return rows


def _why(exc: Exception) -> str:
    """A validation error as ``field: message (got value)``, one per field, on one line."""
    errors = getattr(exc, "errors", None)
    if not callable(errors):
        return f"{type(exc).__name__}: {exc}"
    return "; ".join(
        f"{'.'.join(map(str, e['loc'])) or 'row'}: {e['msg']} (got {e.get('input')!r:.60})" for e in errors()
    )


def log_frame(rows: Sequence[InferenceLog]) -> Any:
    """The inference log rows as the columns the signals read."""
    import pandas as pd

    data = []
    for r in rows:
        scores = [x.score for x in r.retrieved if x.score is not None]
        total = r.latency_ms.total
        data.append(
            {
                "query": r.query,
                "answer": r.answer if r.status == "ok" else None,
                "retrieval_score": max(scores) if scores else math.nan,
                "latency_ms": total if total is not None else math.nan,
                "outcome": outcome(r.status),
                "retrieved": len(r.retrieved),
            }
        )
    return pd.DataFrame(data, columns=_COLUMNS)


def _rows(frame: Any, n: int = TEXT_SAMPLE) -> Any:
    """At most ``n`` rows, a seeded sample (text descriptors cost per row)."""
    return frame if len(frame) <= n else frame.sample(n=n, random_state=0).sort_index()


def _hold(data: ScopeData, minimum: int, what: str = "rows") -> ScopeData:
    if len(data.current) < minimum:
        data.skipped = f"{len(data.current)} {what} in the window (< {minimum}): not enough data"
    elif len(data.reference) < minimum:
        data.skipped = f"{len(data.reference)} reference {what} ({data.reference_kind}) (< {minimum}): not enough data"
    return data


def logged_vectors(*rows: Sequence[InferenceLog]) -> dict[tuple[str, str], QueryEmbedding]:
    """The query embeddings retrieval already computed, by (embedding model, query text); decoded only
    for the texts the check samples."""
    return {
        (r.query_embedding.model, r.query): r.query_embedding
        for side in rows
        for r in side
        if r.query_embedding is not None and r.query
    }


def _text_scopes(
    current: Any, ref_queries: Any, ref_answers: Any, kind: str, min_rows: int, known: dict | None = None
) -> dict[str, ScopeData]:
    ok = current[current["outcome"] == "ok"]
    queries = ScopeData(
        "queries", kind, _rows(current[["query"]].dropna()), _rows(ref_queries.dropna()), known=known or {}
    )
    answers = ScopeData("answers", kind, _rows(ok[["answer"]].dropna()), _rows(ref_answers.dropna()))
    return {"queries": _hold(queries, min_rows), "answers": _hold(answers, min_rows)}


def traffic_scopes(
    current_rows: list[InferenceLog], reference_rows: list[InferenceLog], kind: str, min_rows: int
) -> dict[str, ScopeData]:
    """Queries, answers and operations of the window against a window of recent traffic."""
    current, reference = log_frame(current_rows), log_frame(reference_rows)
    ok_ref = reference[reference["outcome"] == "ok"]
    known = logged_vectors(current_rows, reference_rows)
    scopes = _text_scopes(current, reference[["query"]], ok_ref[["answer"]], kind, min_rows, known)
    scopes["operations"] = _hold(ScopeData("operations", kind, current, reference), min_rows)
    return scopes


def training_scopes(
    current_rows: list[InferenceLog],
    *,
    warehouse: Any,
    artifacts: Any,
    window: Window,
    author: str | None,
    min_rows: int,
) -> tuple[dict[str, ScopeData], dict[str, Any]]:
    """Queries and answers against the latest instruct dataset; new documents against the training corpus."""
    import pandas as pd

    training = training_reference(artifacts, author)
    ref_q = pd.DataFrame({"query": training.queries}, columns=["query"])
    ref_a = pd.DataFrame({"answer": training.answers}, columns=["answer"])
    scopes = _text_scopes(log_frame(current_rows), ref_q, ref_a, "training", min_rows, logged_vectors(current_rows))
    info: dict[str, Any] = {"dataset_versions": training.versions}
    empty = pd.DataFrame({"text": []})
    docs = ScopeData("documents", "training_corpus", empty, empty)
    if not training.document_ids:
        docs.skipped = "no instruct dataset version: the training corpus is unknown"
        scopes["documents"] = docs
        return scopes, info
    new = documents(warehouse, crawled=(window.start, window.end), author=author, exclude=training.document_ids)
    corpus = documents(warehouse, ids=training.document_ids)
    docs.current = pd.DataFrame({"text": [d.text[:DOCUMENT_CHARS] for d in new]}, columns=["text"])
    docs.reference = pd.DataFrame({"text": [d.text[:DOCUMENT_CHARS] for d in corpus]}, columns=["text"])
    info["new_documents"] = len(new)
    docs.minimum = MIN_DOCUMENTS
    scopes["documents"] = _hold(docs, MIN_DOCUMENTS, "documents")
    return scopes, info
