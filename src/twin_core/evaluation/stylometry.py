"""Style as style: Burrows' Delta over the most frequent (function) words.

Burrows' Delta compares how often texts use the commonest words of a population ("the", "of", "I",
"which", ...), each word's relative frequency standardized (z-score) across that population; the Delta
is the mean absolute z difference. Topic words are rare, so the measure follows habits, not subjects.

- ``style_distance(texts, reference)``: Delta of the pooled ``texts`` from the author profile, the
  mean of the reference documents (the population: each document a sample of the author's style).
- ``style_difference_interval(texts, other, reference)``: the bootstrap interval of the difference of two
  such Deltas (how sure an increase is, from a few sampled answers).
- ``style_comparison(texts, other, reference)``: both Deltas and that interval on one profile of the
  reference (the canary's live-quality check).

Attribution among authors is ``attribution.py``'s: Delta's was checked there against the authors'
held-out writing and found biased towards one author.

Written on numpy rather than ``faststylometry`` (checked, 1.0.5): that library standardizes only
across two or more authors (no single-author profile, which the gate and the canary need), and one
word with zero spread turns every Delta into NaN, which happens on short answers.
"""

from __future__ import annotations

import re
from collections import Counter
from typing import Any

VOCAB_SIZE = 50  # most frequent words of the population (Burrows used 30-150)
_WORD = re.compile(r"[a-z]+(?:'[a-z]+)?")


def tokens(text: str) -> list[str]:
    """Lower-cased words (apostrophes kept: "don't", "it's" are style)."""
    return _WORD.findall((text or "").lower())


def _vocabulary(docs: list[list[str]]) -> list[str]:
    """The most frequent words among those used in at least half of the documents ("culling", as in R's
    stylo): a topic word that one document repeats is not a habit."""
    counts = Counter(word for doc in docs for word in doc)
    spread = Counter(word for doc in docs for word in set(doc))
    culled = {w: c for w, c in counts.items() if 2 * spread[w] >= len(docs)}
    return [w for w, _ in sorted(culled.items(), key=lambda kv: (-kv[1], kv[0]))[:VOCAB_SIZE]]


def _frequencies(docs: list[list[str]], vocab: list[str]) -> Any:
    import numpy as np

    rows = []
    for doc in docs:
        counts = Counter(doc)
        rows.append([counts[w] / len(doc) if doc else 0.0 for w in vocab])
    return np.asarray(rows, dtype=float).reshape(len(docs), len(vocab))


def _standardizer(population: list[list[str]]) -> tuple[list[str], Any, Any]:
    """Vocabulary, mean and std (ddof=1) over the population; words with no spread are dropped."""
    vocab = _vocabulary(population)
    freqs = _frequencies(population, vocab)
    mean, std = freqs.mean(axis=0), freqs.std(axis=0, ddof=1)
    keep = std > 0
    return [w for w, k in zip(vocab, keep, strict=True) if k], mean[keep], std[keep]


Profile = tuple[list[str], Any, Any]  # the reference documents' vocabulary, and each word's mean and std


def _profile(reference: list[str]) -> Profile:
    """The reference documents' vocabulary, mean and std; ValueError when they cannot scale a word."""
    refs = [t for t in (tokens(r) for r in reference) if t]
    if len(refs) < 2:
        raise ValueError("style_distance needs at least two reference documents (their spread scales the words)")
    vocab, mean, std = _standardizer(refs)
    if not vocab:
        raise ValueError("style_distance: the reference documents do not differ on any frequent word")
    return vocab, mean, std


def style_distance(texts: list[str], reference: list[str]) -> float:
    """Burrows' Delta of ``texts`` (pooled) from the ``reference`` documents' profile; lower = closer.

    ValueError when fewer than two reference documents have words, or ``texts`` has none.
    """
    return _distance(texts, _profile(reference))


def _distance(texts: list[str], profile: Profile) -> float:
    vocab, mean, std = profile
    pooled = [w for t in texts for w in tokens(t)]
    if not pooled:
        raise ValueError("style_distance: no words in the texts to measure")
    z = (_frequencies([pooled], vocab)[0] - mean) / std
    return float(abs(z).mean())


def style_difference_interval(
    texts: list[str], other: list[str], reference: list[str], *, confidence: float = 0.95, resamples: int = 2000
) -> tuple[float, float]:
    """Percentile bootstrap interval of ``style_distance(texts) - style_distance(other)``: each side's
    texts (those with words) resampled with replacement on their own, seeded (the same texts give the same
    interval). ValueError as ``style_distance``, or with fewer than two texts with words on a side."""
    return _interval(texts, other, _profile(reference), confidence, resamples)


def style_comparison(
    texts: list[str], other: list[str], reference: list[str], *, confidence: float = 0.95, resamples: int = 2000
) -> tuple[float, float, tuple[float, float]]:
    """``style_distance`` of ``texts``, that of ``other``, and ``style_difference_interval`` of the two, on
    one profile of ``reference`` (the canary's live-quality check): the same values, and the same first
    ValueError, as the three calls in that order, which profiled the reference three times."""
    profile = _profile(reference)
    distances = _distance(texts, profile), _distance(other, profile)
    return *distances, _interval(texts, other, profile, confidence, resamples)


def _interval(
    texts: list[str], other: list[str], profile: Profile, confidence: float, resamples: int
) -> tuple[float, float]:
    import numpy as np
    from scipy.stats import bootstrap

    vocab, mean, std = profile

    def counts(side: list[str]) -> tuple[Any, Any]:
        docs = [t for t in (tokens(x) for x in side) if t]
        if len(docs) < 2:
            raise ValueError(f"style interval: {len(docs)} text(s) with words on a side, fewer than 2")
        found = [[Counter(d)[w] for w in vocab] for d in docs]
        return np.asarray(found, dtype=float), np.asarray([len(d) for d in docs])

    (ca, ta), (cb, tb) = counts(texts), counts(other)

    def delta(c: Any, t: Any, idx: Any) -> float:
        rows = np.asarray(idx, dtype=int)
        return float(np.abs((c[rows].sum(axis=0) / t[rows].sum() - mean) / std).mean())

    res = bootstrap(
        (np.arange(len(ca)), np.arange(len(cb))),
        lambda ia, ib: delta(ca, ta, ia) - delta(cb, tb, ib),
        paired=False, vectorized=False, n_resamples=resamples, confidence_level=confidence, method="percentile",
        rng=0,
    )  # fmt: skip
    return float(res.confidence_interval.low), float(res.confidence_interval.high)
