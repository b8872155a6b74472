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

Every signal is measured on the values it has (``measures.Measure``: missing values dropped, embeddings
on their sample) and held, before any descriptor or embedding is computed, when either side has fewer
than the minimum; a score that is not a finite number holds it too.

A distance (and an embedding's ROC AUC) states its uncertainty: the p-value of a seeded permutation test
of the same distance on the same values (``permutation.py``), with its permutations and the values it
used; a distance whose test cannot run keeps its score without a p-value: not drifted within its
threshold, held beyond it (never decided drifted on the threshold alone).
"""

from __future__ import annotations

import hashlib
import io
from collections.abc import Callable
from functools import partial
from typing import Any

from twin_core.domain.inference import QueryEmbedding
from twin_core.monitoring import permutation
from twin_core.monitoring.config import VALUE_TYPES, Signal
from twin_core.monitoring.measures import Measure, ScopeData, measure_or_hold, scored
from twin_core.monitoring.text_tools import TextTools, oov_share

CACHE_PREFIX = "monitoring/_cache/embeddings"
TSNE_MIN_ROWS = 30  # Evidently's t-SNE (perplexity 30) needs more rows than this

__all__ = ["Measure", "ScopeData", "embedding_drift", "value_measures", "value_report", "value_scores"]


def value_measures(signals: list[Signal], data: ScopeData, minimum: int) -> dict[str, Measure]:
    """Each value signal's usable values on both sides (a descriptor of a text is always defined, so
    these are the non-missing values of its column), held below ``minimum``."""
    return {
        s.name: measure_or_hold(
            s, data, int(data.current[s.column].notna().sum()), int(data.reference[s.column].notna().sum()), minimum
        )
        for s in signals
    }


def value_report(
    signals: list[Signal], data: ScopeData, tools: TextTools, minimum: int
) -> tuple[Any | None, dict[str, Measure]]:
    """Evidently report of ValueDrift metrics over the values of the signals that are not held (None when
    all are); measures by signal. A text signal's descriptor (length, out-of-vocabulary share, language) is
    computed once (``_sides``, as ``value_scores`` does): Evidently gets the values as a plain column, and
    the permutation test the very same values."""
    measures = value_measures(signals, data, minimum)
    signals = [s for s in signals if not measures[s.name].held]
    if not signals:
        return None, measures
    import pandas as pd
    from evidently import DataDefinition, Dataset, Report
    from evidently.metrics import ValueDrift

    languages: dict[str, str] = {}
    sides = {s.name: _sides(s, data, tools, languages) for s in signals}
    numeric = sorted({s.feature for s in signals if sides[s.name][2] == "num"})
    definition = DataDefinition(
        numerical_columns=numeric, categorical_columns=sorted({s.feature for s in signals} - set(numeric))
    )

    def dataset(side: int, rows: Any) -> Any:  # each signal's values on the side's rows (a missing value: NaN)
        frame = pd.DataFrame({s.feature: sides[s.name][side] for s in signals}, index=rows)
        return Dataset.from_pandas(frame.reset_index(drop=True), data_definition=definition)

    metrics = [ValueDrift(column=s.feature, method=s.method, threshold=s.threshold) for s in signals]
    snapshot = Report(metrics).run(dataset(1, data.current.index), dataset(0, data.reference.index))
    by_column = {m.get("config", {}).get("column"): m.get("value") for m in snapshot.dict()["metrics"]}
    for s in signals:
        scored(measures[s.name], by_column.get(s.feature))
        if s.permuted and not measures[s.name].held:
            with_p_value(measures[s.name], s, partial(_value_test, s, *sides[s.name]))
    return snapshot, measures


def _sides(signal: Signal, data: ScopeData, tools: TextTools, languages: dict[str, str]) -> tuple[Any, Any, str]:
    """(reference values, current values, their type) of a value signal, as its stattest compares them."""
    cur, kind = _feature(signal, data.current[signal.column], tools, languages)
    ref, _ = _feature(signal, data.reference[signal.column], tools, languages)
    return ref, cur, kind


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
    return column.dropna(), VALUE_TYPES[signal.kind]


def value_scores(signals: list[Signal], data: ScopeData, tools: TextTools, minimum: int) -> dict[str, Measure]:
    """The value-drift measure of each signal with Evidently's stattest of its method, without a Report."""
    from evidently.legacy.calculations.stattests import get_stattest

    languages: dict[str, str] = {}
    measures = value_measures(signals, data, minimum)
    for s in signals:
        if measures[s.name].held:
            continue
        ref, cur, kind = _sides(s, data, tools, languages)
        test = get_stattest(ref, cur, kind, s.method)
        scored(measures[s.name], test(ref, cur, kind, s.threshold).drift_score)
        if s.permuted:
            with_p_value(measures[s.name], s, partial(_value_test, s, ref, cur, kind))
    return measures


def with_p_value(found: Measure, signal: Signal, test: Callable[[], permutation.Permuted]) -> Measure:
    """``found`` (scored) with its permutation test's p-value, permutations and values used. When the test
    cannot give one, the score stays without a p-value: within its threshold it is not drifted, beyond it
    held (``Signal.drifted``: a distance is never decided drifted on its threshold alone)."""
    if found.held:
        return found
    try:
        outcome = test()
    except (ValueError, ArithmeticError) as exc:
        found.details.update(
            confidence=signal.confidence,
            detail=f"no permutation p-value ({exc}) on {found.rows} and {found.reference_rows} values",
        )
        return found
    found.details.update(outcome.details(signal.alpha), confidence=signal.confidence)
    return found


def _value_test(signal: Signal, ref: Any, cur: Any, kind: str) -> permutation.Permuted:
    """The permutation test of a value signal's distance: vectorised for wasserstein and a categorical
    Jensen-Shannon, else the signal's own Evidently stattest on a smaller sample."""
    if signal.method == "wasserstein":
        return permutation.wasserstein(ref, cur)
    if signal.method == "jensenshannon" and kind == "cat":
        return permutation.category_distance(ref, cur, signal.method)
    from evidently.legacy.calculations.stattests import get_stattest

    test = get_stattest(ref, cur, kind, signal.method)
    return permutation.generic(ref, cur, lambda r, c: test(r, c, kind, signal.threshold).drift_score)


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
    signal: Signal, data: ScopeData, tools: TextTools, *, size: int, artifacts: Any, plots: bool, minimum: int
) -> tuple[Any | None, Measure]:
    """The signal's embeddings-drift measure on a seeded sample of ``size`` texts per side (held below
    ``minimum`` texts, before anything is embedded); with ``plots`` (and enough rows) Evidently's report."""
    from evidently.metrics.embeddings import DistanceDriftMethod, ModelDriftMethod

    cur_texts = sample([str(t) for t in data.current[signal.column].dropna()], size)
    ref_texts = sample([str(t) for t in data.reference[signal.column].dropna()], size)
    found = measure_or_hold(signal, data, len(cur_texts), len(ref_texts), minimum)
    if found.held:
        return None, found
    cur = embeddings(cur_texts, tools, artifacts, data.known)
    ref = embeddings(ref_texts, tools, artifacts, data.known)
    if signal.method == "model":
        method: Any = ModelDriftMethod(threshold=signal.threshold)
        test = partial(permutation.classifier_auc, ref.copy(), cur.copy())
    else:
        method = DistanceDriftMethod(dist=signal.dist, threshold=signal.threshold)
        test = partial(permutation.mean_embedding_distance, ref.copy(), cur.copy(), signal.dist)
    if not plots or len(cur) + len(ref) <= TSNE_MIN_ROWS:
        score, _, _ = method(cur.copy(), ref.copy())
        return None, with_p_value(scored(found, score), signal, test)
    from evidently import DataDefinition, Dataset, Report
    from evidently.metrics import EmbeddingsDrift

    names = list(cur.columns)
    definition = DataDefinition(numerical_columns=names, embeddings={signal.name: names})
    report = Report([EmbeddingsDrift(embeddings_name=signal.name, drift_method=method)])
    snapshot = report.run(
        Dataset.from_pandas(cur, data_definition=definition), Dataset.from_pandas(ref, data_definition=definition)
    )
    return snapshot, with_p_value(scored(found, snapshot.dict()["metrics"][0]["value"]), signal, test)
