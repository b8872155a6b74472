"""Per-answer metrics: ROUGE-L, topic similarity, retrieval rank (hit@k, MRR) and groundedness; the
Wilson interval of a proportion as a report field (attribution shares here, success rates in the canary
analysis), from statsmodels.

All return None when there is nothing to measure (an empty answer scores 0, an absent one None), and
averages skip None: a missing value never counts as a zero.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Sequence
from typing import Any

_WORD = re.compile(r"[a-z0-9][a-z0-9'+#.-]*[a-z0-9+#]|[a-z0-9]", re.IGNORECASE)
# Function words carry no content: an answer is grounded by the context's content words.
STOPWORDS = frozenset(
    """a about above after again against all also am an and any are as at be because been before being
    below between both but by can could did do does doing down during each few for from further had has
    have having he her here hers him his how i if in into is it its itself just me more most my no nor
    not now of off on once only or other our ours out over own same she should so some such than that
    the their theirs them then there these they this those through to too under until up very was we
    were what when where which while who whom why will with would you your yours yourself""".split()  # noqa: SIM905
)


def mean(values: Iterable[float | None]) -> float | None:
    kept = [float(v) for v in values if v is not None]
    return sum(kept) / len(kept) if kept else None


def _scorer() -> Any:
    from rouge_score import rouge_scorer

    return rouge_scorer.RougeScorer(["rougeL"], use_stemmer=True)


def rouge_l(predictions: Sequence[str | None], references: Sequence[str]) -> list[float | None]:
    """ROUGE-L F1 (longest common subsequence, Porter-stemmed) of each prediction vs its reference."""
    scorer = _scorer()
    out: list[float | None] = []
    for pred, ref in zip(predictions, references, strict=True):
        out.append(None if pred is None else float(scorer.score(ref, pred)["rougeL"].fmeasure))
    return out


def topic_similarity(
    predictions: Sequence[str | None], references: Sequence[str], embed: Callable[[list[str]], Any]
) -> list[float | None]:
    """Cosine similarity of each answer's embedding with the author's reference answer's: the topic,
    not the style (``stylometry`` measures style).

    ``embed`` returns unit-normalized vectors (the feature store's embedder), so the dot product is
    the cosine.
    """
    idx = [i for i, p in enumerate(predictions) if p is not None and p.strip()]
    out: list[float | None] = [None if p is None else 0.0 for p in predictions]
    if not idx:
        return out
    vecs = embed([str(predictions[i]) for i in idx] + [references[i] for i in idx])
    n = len(idx)
    for j, i in enumerate(idx):
        out[i] = float(sum(float(a) * float(b) for a, b in zip(vecs[j], vecs[n + j], strict=True)))
    return out


def first_relevant_rank(retrieved: Sequence[dict[str, Any]], document_id: str | None, link: str | None) -> int | None:
    """1-based rank of the first retrieved chunk from the row's source document, or None."""
    for rank, hit in enumerate(retrieved, start=1):
        if (document_id and hit.get("document_id") == document_id) or (link and hit.get("link") == link):
            return rank
    return None


def hit_at_k(ranks: Sequence[int | None], k: int) -> float | None:
    return sum(1 for r in ranks if r is not None and r <= k) / len(ranks) if ranks else None


def mrr(ranks: Sequence[int | None], k: int) -> float | None:
    """Mean reciprocal rank, cut at k (a hit beyond k counts 0)."""
    return sum(1.0 / r for r in ranks if r is not None and r <= k) / len(ranks) if ranks else None


def content_words(text: str) -> list[str]:
    return [w.lower() for w in _WORD.findall(text or "") if w.lower() not in STOPWORDS and len(w) > 2]


def groundedness(answer: str | None, contexts: Sequence[str]) -> float | None:
    """Share of the answer's content words that occur in the retrieved context (1.0 = all supported).

    None when there is no answer, no context, or no content word to check.
    """
    if answer is None or not contexts:
        return None
    words = content_words(answer)
    if not words:
        return None
    support = set(content_words(" ".join(contexts)))
    return sum(1 for w in words if w in support) / len(words)


def wilson_ci95(successes: int, n: int) -> list[float] | None:
    """The Wilson score 95 % interval of ``successes / n`` (statsmodels' ``proportion_confint``) as a report
    field: [low, high] to 4 places (None without data)."""
    if n <= 0:
        return None
    from statsmodels.stats.proportion import proportion_confint

    low, high = proportion_confint(successes, n, alpha=0.05, method="wilson")
    return [round(float(low), 4), round(float(high), 4)]
