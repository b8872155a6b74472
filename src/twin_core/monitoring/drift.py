"""One drift check: a window of the inference log against a reference, with Evidently 0.7.

Per scope (queries, answers, operations, documents) one Evidently ``Report`` of ``ValueDrift``
metrics over text descriptors (``TextLength``, out-of-vocabulary share, language) and numeric or
categorical columns, plus one ``EmbeddingsDrift`` report with an explicit embeddings-drift method on
a deterministic sample of rows. Most methods are distances: a signal drifts when its score is above
its threshold, except for p-value methods (ks, chisquare...), where it drifts below its threshold.
"""

from __future__ import annotations

import hashlib
import io
import logging
import math
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from twin_core.domain.inference import InferenceLog
from twin_core.errors import InputError
from twin_core.monitoring.config import Signal, load_signals
from twin_core.monitoring.reference import documents, training_reference
from twin_core.monitoring.reports import ReportWriter
from twin_core.monitoring.windows import Window
from twin_core.settings import Settings

log = logging.getLogger(__name__)

MIN_DOCUMENTS = 5
TEXT_SAMPLE = 2000  # rows per side for the text descriptors (queries, answers)
READ_BATCH = 100_000  # one query per window: paging with skip re-reads the embedded store per page
CACHE_PREFIX = "monitoring/_cache/embeddings"
TSNE_MIN_ROWS = 30
DOCUMENT_CHARS = 2000
_WORD = re.compile(r"[a-z]+")


@dataclass
class TextTools:
    """What the descriptors need, injected by the caller (the CLI loads the feature pipeline's embedder)."""

    embed: Callable[[list[str]], Any]  # texts -> array (n, dim)
    language: Callable[[str], str | None]  # text -> ISO code or None
    vocabulary: frozenset[str]  # lower-case known words
    model_id: str = ""

    @classmethod
    def from_embedder(cls, embedder: Any) -> TextTools:
        """From the feature pipeline's ``Embedder``: its vectors, its tokenizer's whole-word vocabulary,
        and the domain's stop-word language detector."""
        from twin_core.domain.language import detect_language

        vocab = frozenset(w for w in embedder.tokenizer.get_vocab() if w.isascii() and w.isalpha() and len(w) > 1)
        return cls(
            embed=lambda texts: embedder.encode(list(texts)),
            language=detect_language,
            vocabulary=vocab,
            model_id=embedder.model_id,
        )


class LazyTextTools:
    """``TextTools`` built on first use: an empty or tiny window never loads a model."""

    def __init__(self, load: Callable[[], TextTools]) -> None:
        self._load = load
        self._tools: TextTools | None = None

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):
            raise AttributeError(name)
        if self._tools is None:
            self._tools = self._load()
        return getattr(self._tools, name)


@dataclass
class ScopeData:
    scope: str
    reference_kind: str
    current: Any  # pandas DataFrame
    reference: Any
    skipped: str | None = None


def log_frame(rows: Sequence[InferenceLog]) -> Any:
    """The inference log rows as the columns the signals read."""
    import pandas as pd

    data = []
    for r in rows:
        scores = [x.score for x in r.retrieved if x.score is not None]
        data.append(
            {
                "query": r.query,
                "answer": r.answer if r.status == "ok" else None,
                "retrieval_score": max(scores) if scores else math.nan,
                "latency_ms": r.latency_ms.total if r.latency_ms.total is not None else math.nan,
                "outcome": "ok" if r.status == "ok" else "error",
            }
        )
    return pd.DataFrame(data, columns=["query", "answer", "retrieval_score", "latency_ms", "outcome"])


def _rows(frame: Any, n: int | None = None) -> Any:
    """At most ``n`` (TEXT_SAMPLE) rows, a seeded sample: text descriptors cost per row, and a few
    thousand rows per side already pin a distribution down."""
    n = n or TEXT_SAMPLE
    return frame if len(frame) <= n else frame.sample(n=n, random_state=0).sort_index()


def _read_logs(warehouse: Any, window: Window, author: str | None) -> list[InferenceLog]:
    return list(warehouse.inference_logs(window.start, window.end, author, batch_size=READ_BATCH))


def _text_frame(column: str, texts: Sequence[str]) -> Any:
    import pandas as pd

    return pd.DataFrame({column: [t for t in texts if t and str(t).strip()]})


def oov_share(text: Any, vocabulary: frozenset[str]) -> float:
    """Share of the words (a-z runs) of ``text`` that are not in ``vocabulary`` (0 for no words)."""
    words = _WORD.findall(str(text or "").lower())
    if not words:
        return 0.0
    return sum(1 for w in words if w not in vocabulary) / len(words)


def _descriptors(signals: list[Signal], tools: TextTools) -> list[Any]:
    from evidently.core.datasets import DatasetColumn
    from evidently.descriptors import CustomColumnDescriptor, TextLength
    from evidently.legacy.core import ColumnType

    def oov(col: Any) -> Any:
        return DatasetColumn(type=ColumnType.Numerical, data=col.data.apply(lambda t: oov_share(t, tools.vocabulary)))

    seen: dict[str, str] = {}  # repeated texts (the same question asked again) are detected once

    def detect(text: Any) -> str:
        text = str(text or "")
        if text not in seen:
            seen[text] = tools.language(text) or "none"
        return seen[text]

    def language(col: Any) -> Any:
        return DatasetColumn(type=ColumnType.Categorical, data=col.data.apply(detect))

    out = []
    for s in signals:
        if s.kind == "length":
            out.append(TextLength(s.column, alias=s.feature))
        elif s.kind == "oov":
            out.append(CustomColumnDescriptor(s.column, oov, alias=s.feature))
        elif s.kind == "language":
            out.append(CustomColumnDescriptor(s.column, language, alias=s.feature))
    return out


def _value_report(signals: list[Signal], data: ScopeData, tools: TextTools) -> tuple[Any, dict[str, float]]:
    """Evidently report of ValueDrift metrics over descriptors and plain columns; scores by signal."""
    from evidently import DataDefinition, Dataset, Report
    from evidently.metrics import ValueDrift

    text_cols = sorted({s.column for s in signals if s.kind in ("length", "oov", "language")})
    numeric = sorted({s.column for s in signals if s.kind == "numeric"})
    categorical = sorted({s.column for s in signals if s.kind == "category"})
    columns = text_cols + numeric + categorical
    definition = DataDefinition(text_columns=text_cols, numerical_columns=numeric, categorical_columns=categorical)
    descriptors = _descriptors(signals, tools)

    def dataset(frame: Any) -> Any:
        frame = frame[columns].reset_index(drop=True)
        return Dataset.from_pandas(frame, data_definition=definition, descriptors=descriptors)

    metrics = [ValueDrift(column=s.feature, method=s.method, threshold=s.threshold) for s in signals]
    snapshot = Report(metrics).run(dataset(data.current), dataset(data.reference))
    by_column = {}
    for m in snapshot.dict()["metrics"]:
        cfg = m.get("config", {})
        by_column[cfg.get("column")] = m.get("value")
    return snapshot, {s.name: by_column.get(s.feature) for s in signals}


def _sample(texts: list[str], n: int) -> list[str]:
    if len(texts) <= n:
        return texts
    import numpy as np

    idx = np.sort(np.random.default_rng(0).choice(len(texts), size=n, replace=False))
    return [texts[i] for i in idx]


def _embedding_report(
    signal: Signal, data: ScopeData, tools: TextTools, sample: int, artifacts: Any = None
) -> tuple[Any | None, float]:
    """Evidently EmbeddingsDrift with the signal's explicit method on a deterministic sample (no report
    below ``TSNE_MIN_ROWS`` rows, where Evidently cannot draw its plot: the score comes from the method)."""
    import numpy as np
    import pandas as pd
    from evidently import DataDefinition, Dataset, Report
    from evidently.metrics import EmbeddingsDrift
    from evidently.metrics.embeddings import DistanceDriftMethod, ModelDriftMethod

    def frame(texts: list[str], cached: bool = False) -> Any:
        texts = _sample(texts, sample)
        key = None
        if cached and artifacts is not None:  # a training reference is the same every hour: embed it once
            digest = hashlib.sha256("\n".join([tools.model_id, *texts]).encode()).hexdigest()[:32]
            key = f"{CACHE_PREFIX}/{digest}.npy"
            if artifacts.exists(key):
                vectors = np.load(io.BytesIO(artifacts.get_bytes(key)))
                return pd.DataFrame(vectors, columns=[f"e{i}" for i in range(vectors.shape[1])])
        vectors = np.asarray(tools.embed(texts), dtype="float32")
        if key is not None:
            buf = io.BytesIO()
            np.save(buf, vectors)
            artifacts.put_bytes(key, buf.getvalue())
        return pd.DataFrame(vectors, columns=[f"e{i}" for i in range(vectors.shape[1])])

    cur = frame([str(t) for t in data.current[signal.column].dropna()])
    ref = frame([str(t) for t in data.reference[signal.column].dropna()], cached=data.reference_kind != "previous")
    names = list(cur.columns)
    definition = DataDefinition(numerical_columns=names, embeddings={signal.name: names})
    if signal.method == "model":
        method: Any = ModelDriftMethod(threshold=signal.threshold)
    else:
        method = DistanceDriftMethod(dist=signal.dist, threshold=signal.threshold)
    if len(cur) + len(ref) <= TSNE_MIN_ROWS:
        # Evidently's report plots a t-SNE (perplexity 30) and needs more rows: same method, no report
        score, _, _ = method(cur.copy(), ref.copy())
        return None, float(score)
    report = Report([EmbeddingsDrift(embeddings_name=signal.name, drift_method=method)])
    snapshot = report.run(
        Dataset.from_pandas(cur, data_definition=definition), Dataset.from_pandas(ref, data_definition=definition)
    )
    return snapshot, float(snapshot.dict()["metrics"][0]["value"])


def _scopes(
    settings: Settings,
    window: Window,
    current_rows: list[InferenceLog],
    *,
    warehouse: Any,
    artifacts: Any,
    author: str | None,
    reference: str,
) -> tuple[dict[str, ScopeData], dict[str, Any]]:
    cfg = settings.monitor
    current = log_frame(current_rows)
    ok = current[current["outcome"] == "ok"]
    previous_window = window.previous(cfg.previous_windows)
    previous = log_frame(_read_logs(warehouse, previous_window, author))
    info: dict[str, Any] = {"requested": reference, "previous_window": previous_window.as_dict()}

    training = training_reference(artifacts, author)
    info["dataset_versions"] = training.versions
    if reference == "training" and len(training.queries) >= cfg.min_rows:
        kind = "training"
        ref_queries = _text_frame("query", training.queries)
        ref_answers = _text_frame("answer", training.answers)
    else:
        if reference == "training":
            info["fallback"] = (
                "no instruct dataset version in the artifact store: compared with the previous window"
                if not training.versions
                else f"the instruct dataset has {len(training.queries)} instructions (< {cfg.min_rows}): "
                "compared with the previous window"
            )
            log.warning("monitor: %s", info["fallback"])
        kind = "previous"
        ref_queries = previous[["query"]]
        ref_answers = previous[previous["outcome"] == "ok"][["answer"]]
    info["kind"] = kind

    scopes = {
        "queries": ScopeData("queries", kind, _rows(current[["query"]].dropna()), _rows(ref_queries.dropna())),
        "answers": ScopeData("answers", kind, _rows(ok[["answer"]].dropna()), _rows(ref_answers.dropna())),
        "operations": ScopeData("operations", "previous", current, previous),
    }
    for data in scopes.values():
        if len(data.current) < cfg.min_rows:
            data.skipped = f"{len(data.current)} rows in the window (< {cfg.min_rows})"
        elif len(data.reference) < cfg.min_rows:
            data.skipped = f"{len(data.reference)} reference rows ({data.reference_kind}) (< {cfg.min_rows})"

    import pandas as pd

    if training.document_ids:
        new_docs = documents(
            warehouse, crawled=(window.start, window.end), author=author, exclude=training.document_ids
        )
        corpus = documents(warehouse, ids=training.document_ids)
        cur = pd.DataFrame({"text": [d.text[:DOCUMENT_CHARS] for d in new_docs]}, columns=["text"])
        ref = pd.DataFrame({"text": [d.text[:DOCUMENT_CHARS] for d in corpus]}, columns=["text"])
        docs = ScopeData("documents", "training_corpus", cur, ref)
        if len(cur) < MIN_DOCUMENTS:
            docs.skipped = f"{len(cur)} new documents in the window (< {MIN_DOCUMENTS})"
        elif len(ref) < MIN_DOCUMENTS:
            docs.skipped = f"{len(ref)} training-corpus documents in the warehouse (< {MIN_DOCUMENTS})"
        info["new_documents"] = len(cur)
    else:
        docs = ScopeData("documents", "training_corpus", pd.DataFrame(), pd.DataFrame())
        docs.skipped = "no instruct dataset version: the training corpus is unknown"
    scopes["documents"] = docs
    return scopes, info


def run_drift_check(
    settings: Settings,
    window: Window,
    *,
    tools: TextTools,
    warehouse: Any,
    artifacts: Any,
    author: str | None = None,
    reference: str | None = None,
    alert: bool = False,
) -> dict[str, Any]:
    """Check ``window``: write the reports, return the result (drifted signals, new alerts)."""
    reference = reference or settings.monitor.reference
    if reference not in ("training", "previous"):
        raise InputError(f"--reference {reference!r}: expected training or previous")
    signals = load_signals(settings)
    writer = ReportWriter(artifacts, author, window)
    current_rows = _read_logs(warehouse, window, author)
    result: dict[str, Any] = {
        "window": window.as_dict(),
        "author": author,
        "rows": len(current_rows),
        "report": writer.location,
        "signals": {},
        "drifted": [],
        "alerts": [],
    }
    if len(current_rows) < settings.monitor.min_rows:
        result.update(
            verdict="not_enough_data",
            reason=f"{len(current_rows)} requests in the window (< {settings.monitor.min_rows}): no drift check",
        )
        writer.write_result(result)
        return result

    scopes, info = _scopes(
        settings, window, current_rows, warehouse=warehouse, artifacts=artifacts, author=author, reference=reference
    )
    result["reference"] = info
    reports: dict[str, str] = {}
    for scope, data in scopes.items():
        scoped = [s for s in signals if s.scope == scope]
        if not scoped:
            continue
        if data.skipped:
            for s in scoped:
                result["signals"][s.name] = {"scope": scope, "skipped": data.skipped, "threshold": s.threshold}
            continue
        scores: dict[str, float | None] = {}
        values = [s for s in scoped if s.kind != "embedding"]
        if values:
            snapshot, found = _value_report(values, data, tools)
            reports[scope] = writer.write_snapshot(scope, snapshot)
            scores.update(found)
        for s in (s for s in scoped if s.kind == "embedding"):
            snapshot, scores[s.name] = _embedding_report(s, data, tools, settings.monitor.embedding_sample, artifacts)
            if snapshot is not None:
                reports[s.name] = writer.write_snapshot(s.name, snapshot)
        for s in scoped:
            score = scores.get(s.name)
            usable = score is not None and not (isinstance(score, float) and math.isnan(score))
            entry = {
                "scope": scope,
                "reference": data.reference_kind,
                "method": s.method + (f"/{s.dist}" if s.kind == "embedding" and s.method == "distance" else ""),
                "threshold": s.threshold,
                "score": round(float(score), 6) if usable else None,
                "drifted": bool(usable and s.drifted(float(score))),
                "drift_when": "below" if s.pvalue else "above",
                "rows": len(data.current),
                "reference_rows": len(data.reference),
            }
            result["signals"][s.name] = entry
            if entry["drifted"]:
                result["drifted"].append(
                    {
                        "signal": s.name,
                        "score": entry["score"],
                        "threshold": s.threshold,
                        "method": entry["method"],
                        "drift_when": entry["drift_when"],
                    }
                )
    result["reports"] = reports
    result["verdict"] = "drift" if result["drifted"] else "no_drift"
    if alert and result["drifted"]:
        result["alerts"] = writer.new_alerts(result["drifted"])
    writer.write_result(result)
    return result
