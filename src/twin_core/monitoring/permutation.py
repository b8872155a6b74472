"""The uncertainty of a distance: a seeded permutation test of the very distance a signal is scored with.

A distance above its threshold can be noise in a small window. The test pools both sides, shuffles the
labels ``PERMUTATIONS`` times (seeded: the same data always gives the same p-value) and recomputes the
distance on each relabelling: ``p = (1 + #{permuted >= observed}) / (PERMUTATIONS + 1)``, the chance of a
distance at least this large between two samples of one distribution. A distance signal drifts only when
its score is above the threshold AND ``p < 1 - confidence`` (``config.Signal.drifted``).

Cheap by construction: the relabellings are one boolean matrix, and each distance is computed for all of
them at once (Wasserstein from one sort of the pooled values; category shares, mean embeddings and the
classifier's ROC AUC by matrix products). Above ``MAX_ROWS`` values a side, a value test runs on a seeded
subsample of that many (stated: ``permuted_rows``); the embedding tests run on the embedding sample taken
before them (``TWIN_MONITOR_EMBEDDING_SAMPLE``); a distance Evidently defines otherwise (hellinger, psi,
...) is recomputed with its Evidently stattest on at most ``GENERIC_MAX_ROWS`` values a side.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

PERMUTATIONS = 999  # the smallest p-value is 1 / 1000
MAX_ROWS = 1000  # values per side for the vectorised tests (a seeded subsample above)
GENERIC_MAX_ROWS = 200  # values per side for a distance recomputed with Evidently's own stattest
SEED = 0
_TIES = 1e-9  # relative: a relabelling scoring the observed distance up to rounding counts as ">="


@dataclass(frozen=True)
class Permuted:
    """A permutation test's outcome: the p-value, the relabellings, the values it used on each side (a
    seeded subsample above the cap), and the distance of those values (the score unless subsampled)."""

    p_value: float
    permutations: int
    rows: int
    reference_rows: int
    statistic: float

    def details(self, alpha: float) -> dict[str, Any]:
        """The fields a signal's entry (and its alert) carries, with the decision in words."""
        verdict = "significant" if self.p_value < alpha else "not significant"
        return {
            "p_value": round(self.p_value, 6),
            "permutations": self.permutations,
            "permuted_rows": [self.rows, self.reference_rows],
            "detail": f"permutation test: p = {self.p_value:.4f} ({self.permutations} permutations of "
            f"{self.rows} and {self.reference_rows} values; {verdict} at alpha {alpha:g})",
        }


def _rng() -> Any:
    import numpy as np

    return np.random.default_rng(SEED)


def _capped(values: Any, cap: int, rng: Any) -> Any:
    """At most ``cap`` of ``values`` (a seeded subsample, in their order)."""
    import numpy as np

    if len(values) <= cap:
        return values
    return values[np.sort(rng.choice(len(values), size=cap, replace=False))]


def _labels(n_cur: int, n_ref: int, rng: Any) -> Any:
    """(PERMUTATIONS + 1, n_cur + n_ref) booleans, True = current: row 0 as observed, then the shuffles."""
    import numpy as np

    return _relabelled(np.r_[np.ones(n_cur, dtype=bool), np.zeros(n_ref, dtype=bool)], rng)


def _relabelled(observed: Any, rng: Any) -> Any:
    """(PERMUTATIONS + 1, len(observed)) booleans: row 0 ``observed``, then ``PERMUTATIONS`` shuffles of it."""
    import numpy as np

    return np.vstack([observed, rng.permuted(np.tile(observed, (PERMUTATIONS, 1)), axis=1)])


def _p(stats: Any, rows: int, reference_rows: int) -> Permuted:
    """The p-value of ``stats[0]`` (observed) among ``stats[1:]`` (the relabellings)."""
    import numpy as np

    observed = float(stats[0])
    if not np.isfinite(observed):
        raise ValueError(f"the distance of the permutation sample is {observed!r}")
    at_least = int(np.sum(stats[1:] >= observed - _TIES * max(1.0, abs(observed))))
    return Permuted((1 + at_least) / (PERMUTATIONS + 1), PERMUTATIONS, rows, reference_rows, observed)


def wasserstein(reference: Any, current: Any) -> Permuted:
    """Evidently's normed Wasserstein distance (W1 / max(std of the reference, 0.001)) under relabelling:
    W1 = sum over the gaps of the pooled sorted values of |F_current - F_reference|."""
    import numpy as np

    rng = _rng()
    cur = _capped(np.asarray(current, dtype=float), MAX_ROWS, rng)
    ref = _capped(np.asarray(reference, dtype=float), MAX_ROWS, rng)
    pooled = np.r_[cur, ref]
    pooled = pooled - pooled.mean()  # the std is shift-free; centring keeps its sums exact
    labels = _labels(len(cur), len(ref), rng)
    order = np.argsort(pooled, kind="stable")
    steps = np.where(labels[:, order], 1.0 / len(cur), -1.0 / len(ref))
    gaps = np.diff(pooled[order])
    w1 = np.abs(np.cumsum(steps, axis=1)[:, :-1]) @ gaps
    is_ref = (~labels).astype(float)
    mean = is_ref @ pooled / len(ref)
    var = np.maximum(is_ref @ (pooled * pooled) / len(ref) - mean * mean, 0.0)
    return _p(w1 / np.maximum(np.sqrt(var), 0.001), len(cur), len(ref))


def category_distance(reference: Any, current: Any, method: str) -> Permuted:
    """The Jensen-Shannon distance (natural log, as Evidently's) of the category shares under relabelling."""
    import numpy as np
    import pandas as pd
    from scipy.special import rel_entr

    if method != "jensenshannon":
        raise ValueError(f"no vectorised permutation test for {method!r}")
    rng = _rng()
    cur = _capped(np.asarray(current, dtype=object), MAX_ROWS, rng)
    ref = _capped(np.asarray(reference, dtype=object), MAX_ROWS, rng)
    codes, _ = pd.factorize(pd.Series(np.r_[cur, ref]), sort=True)
    onehot = np.eye(codes.max() + 1)[codes]
    labels = _labels(len(cur), len(ref), rng).astype(float)
    q = labels @ onehot / len(cur)
    p = (onehot.sum(axis=0) - labels @ onehot) / len(ref)
    m = (p + q) / 2
    js = (rel_entr(p, m).sum(axis=1) + rel_entr(q, m).sum(axis=1)) / 2
    return _p(np.sqrt(np.maximum(js, 0.0)), len(cur), len(ref))


def mean_embedding_distance(reference: Any, current: Any, dist: str) -> Permuted:
    """The distance between the mean embeddings (Evidently's DistanceDriftMethod) under relabelling."""
    import numpy as np

    cur, ref = np.asarray(current, dtype=float), np.asarray(reference, dtype=float)
    pooled = np.vstack([cur, ref])
    labels = _labels(len(cur), len(ref), _rng()).astype(float)
    sums = labels @ pooled
    a, b = (pooled.sum(axis=0) - sums) / len(ref), sums / len(cur)  # reference mean, current mean
    if dist == "cosine":
        norms = np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1)
        stats = 1.0 - np.sum(a * b, axis=1) / np.where(norms > 0, norms, np.nan)
    elif dist == "euclidean":
        stats = np.linalg.norm(a - b, axis=1)
    elif dist == "cityblock":
        stats = np.abs(a - b).sum(axis=1)
    else:  # chebyshev
        stats = np.abs(a - b).max(axis=1)
    return _p(stats, len(cur), len(ref))


def classifier_auc(reference: Any, current: Any) -> Permuted:
    """The ROC AUC of Evidently's ModelDriftMethod (the same split and classifier) under relabelling of its
    held-out half: the classifier never saw those rows, so under "one distribution" their labels are
    exchangeable with its predictions (a Mann-Whitney permutation test)."""
    import numpy as np
    import pandas as pd
    from scipy.stats import rankdata
    from sklearn.linear_model import SGDClassifier
    from sklearn.model_selection import train_test_split

    ref, cur = pd.DataFrame(np.asarray(reference)), pd.DataFrame(np.asarray(current))
    data = pd.concat((ref, cur))
    target = np.r_[np.ones(len(ref), dtype=int), np.zeros(len(cur), dtype=int)]
    x_train, x_test, y_train, y_test = train_test_split(data, target, test_size=0.5, random_state=42, shuffle=True)
    scores = SGDClassifier(loss="log_loss", random_state=42).fit(x_train, y_train).predict_proba(x_test)[:, 1]
    ranks = rankdata(scores)
    positives = int(y_test.sum())
    negatives = len(y_test) - positives
    if positives == 0 or negatives == 0:
        raise ValueError("the classifier's held-out half has one side only")
    labels = _relabelled(y_test.astype(bool), _rng())
    auc = (labels.astype(float) @ ranks - positives * (positives + 1) / 2) / (positives * negatives)
    return _p(auc, negatives, positives)


def generic(reference: Any, current: Any, distance: Callable[[Any, Any], float]) -> Permuted:
    """Any other distance, recomputed with ``distance(reference, current)`` for each relabelling, on at most
    ``GENERIC_MAX_ROWS`` values a side."""
    import numpy as np
    import pandas as pd

    rng = _rng()
    cur = _capped(np.asarray(current), GENERIC_MAX_ROWS, rng)
    ref = _capped(np.asarray(reference), GENERIC_MAX_ROWS, rng)
    pooled = np.r_[cur, ref]
    stats = [distance(pd.Series(pooled[~row]), pd.Series(pooled[row])) for row in _labels(len(cur), len(ref), rng)]
    return _p(np.asarray(stats, dtype=float), len(cur), len(ref))
