"""The Evidently 0.7 metrics of one scope: value drift over descriptors and columns, and the embeddings
drift of each embedding signal.

Evidently's ``ValueDrift`` renders plotly figures while it computes (about 85 % of a check's time on a
small window): by default the same Evidently stattests are called directly (``value_scores``), and the
HTML reports are built only with ``plots`` (``value_report``).

Embeddings are scored with the signal's explicit method (cosine distance between mean embeddings, or a
classifier's ROC AUC) on a seeded sample. Evidently's ``EmbeddingsDrift`` report also draws a t-SNE
plot, the most expensive part of a check: it runs only with ``plots`` (``twin monitor drift --plots``).
Embeddings are cached in the artifact store by the digest of the sampled texts, so an hour embedded as
the current window is not embedded again when it is the next hour's reference. A query whose embedding
the request log already holds (retrieval computed it, with the same model) is not embedded at all.
"""

from __future__ import annotations

import hashlib
import io
from dataclasses import dataclass, field
from typing import Any

from twin_core.domain.inference import QueryEmbedding
from twin_core.monitoring.config import Signal
from twin_core.monitoring.text_tools import TextTools, descriptors, oov_share

CACHE_PREFIX = "monitoring/_cache/embeddings"
TSNE_MIN_ROWS = 30  # Evidently's t-SNE (perplexity 30) needs more rows than this


@dataclass
class ScopeData:
    scope: str
    reference_kind: str  # previous | baseline | training | training_corpus
    current: Any  # pandas DataFrame
    reference: Any
    skipped: str | None = None
    known: dict[tuple[str, str], QueryEmbedding] = field(default_factory=dict)  # (model id, text) -> logged embedding


def value_report(signals: list[Signal], data: ScopeData, tools: TextTools) -> tuple[Any, dict[str, float | None]]:
    """Evidently report of ValueDrift metrics over descriptors and plain columns; scores by signal."""
    from evidently import DataDefinition, Dataset, Report
    from evidently.metrics import ValueDrift

    text_cols = sorted({s.column for s in signals if s.kind in ("length", "oov", "language")})
    numeric = sorted({s.column for s in signals if s.kind == "numeric"})
    categorical = sorted({s.column for s in signals if s.kind == "category"})
    columns = text_cols + numeric + categorical
    definition = DataDefinition(text_columns=text_cols, numerical_columns=numeric, categorical_columns=categorical)
    descs = descriptors(signals, tools)

    def dataset(frame: Any) -> Any:
        frame = frame[columns].reset_index(drop=True)
        return Dataset.from_pandas(frame, data_definition=definition, descriptors=descs)

    metrics = [ValueDrift(column=s.feature, method=s.method, threshold=s.threshold) for s in signals]
    snapshot = Report(metrics).run(dataset(data.current), dataset(data.reference))
    by_column = {m.get("config", {}).get("column"): m.get("value") for m in snapshot.dict()["metrics"]}
    return snapshot, {s.name: by_column.get(s.feature) for s in signals}


def _feature(signal: Signal, column: Any, tools: TextTools, languages: dict[str, str]) -> tuple[Any, str]:
    """The values a signal's stattest compares (the descriptor, computed as Evidently's) and their type."""
    if signal.kind == "length":
        return column.dropna().astype(str).str.len(), "num"
    if signal.kind == "oov":
        return column.dropna().map(lambda t: oov_share(t, tools.vocabulary)), "num"
    if signal.kind == "language":

        def detect(text: Any) -> str:
            text = str(text or "")
            if text not in languages:
                languages[text] = tools.language(text) or "none"
            return languages[text]

        return column.dropna().map(detect), "cat"
    return column.dropna(), "num" if signal.kind == "numeric" else "cat"


def value_scores(signals: list[Signal], data: ScopeData, tools: TextTools) -> dict[str, float | None]:
    """The value-drift score of each signal with Evidently's stattest of its method, without a Report."""
    from evidently.legacy.calculations.stattests import get_stattest

    languages: dict[str, str] = {}
    scores: dict[str, float | None] = {}
    for s in signals:
        cur, kind = _feature(s, data.current[s.column], tools, languages)
        ref, _ = _feature(s, data.reference[s.column], tools, languages)
        if cur.empty or ref.empty:
            scores[s.name] = None
            continue
        test = get_stattest(ref, cur, kind, s.method)
        scores[s.name] = float(test(ref, cur, kind, s.threshold).drift_score)
    return scores


def sample(texts: list[str], n: int) -> list[str]:
    """At most ``n`` texts, a seeded sample in their original order."""
    if len(texts) <= n:
        return texts
    import numpy as np

    idx = np.sort(np.random.default_rng(0).choice(len(texts), size=n, replace=False))
    return [texts[i] for i in idx]


def embeddings(
    texts: list[str], tools: TextTools, artifacts: Any, known: dict[tuple[str, str], QueryEmbedding] | None = None
) -> Any:
    """The texts' embeddings as a frame (e0..eN): from the cache when these texts were embedded before,
    else the logged vectors of ``known`` and the model for the rest only."""
    import numpy as np
    import pandas as pd

    digest = hashlib.sha256("\n".join([tools.model_id, *texts]).encode()).hexdigest()[:32]
    key = f"{CACHE_PREFIX}/{digest}.npy"
    if artifacts is not None and artifacts.exists(key):
        vectors = np.load(io.BytesIO(artifacts.get_bytes(key)))
    else:
        vectors = _embed(texts, tools, known or {})
        if artifacts is not None:
            buf = io.BytesIO()
            np.save(buf, vectors)
            artifacts.put_bytes(key, buf.getvalue())
    return pd.DataFrame(vectors, columns=[f"e{i}" for i in range(vectors.shape[1])])


def _embed(texts: list[str], tools: TextTools, known: dict[tuple[str, str], QueryEmbedding]) -> Any:
    import numpy as np

    missing = [t for t in texts if (tools.model_id, t) not in known]
    fresh = dict(zip(missing, np.asarray(tools.embed(missing), dtype="float32"), strict=True)) if missing else {}
    rows = [fresh[t] if t in fresh else np.asarray(known[(tools.model_id, t)].vector(), dtype="float32") for t in texts]
    return np.vstack(rows) if rows else np.zeros((0, 0), dtype="float32")


def embedding_drift(
    signal: Signal, data: ScopeData, tools: TextTools, *, size: int, artifacts: Any, plots: bool
) -> tuple[Any | None, float]:
    """The signal's embeddings-drift score; with ``plots`` (and enough rows) also Evidently's report."""
    from evidently.metrics.embeddings import DistanceDriftMethod, ModelDriftMethod

    cur = embeddings(sample([str(t) for t in data.current[signal.column].dropna()], size), tools, artifacts, data.known)
    ref = embeddings(
        sample([str(t) for t in data.reference[signal.column].dropna()], size), tools, artifacts, data.known
    )
    if signal.method == "model":
        method: Any = ModelDriftMethod(threshold=signal.threshold)
    else:
        method = DistanceDriftMethod(dist=signal.dist, threshold=signal.threshold)
    if not plots or len(cur) + len(ref) <= TSNE_MIN_ROWS:
        score, _, _ = method(cur.copy(), ref.copy())
        return None, float(score)
    from evidently import DataDefinition, Dataset, Report
    from evidently.metrics import EmbeddingsDrift

    names = list(cur.columns)
    definition = DataDefinition(numerical_columns=names, embeddings={signal.name: names})
    report = Report([EmbeddingsDrift(embeddings_name=signal.name, drift_method=method)])
    snapshot = report.run(
        Dataset.from_pandas(cur, data_definition=definition), Dataset.from_pandas(ref, data_definition=definition)
    )
    return snapshot, float(snapshot.dict()["metrics"][0]["value"])
