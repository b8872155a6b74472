"""Who wrote this answer? Author attribution of short texts, with the measure's own accuracy beside it.

A multinomial naive Bayes (scikit-learn) over the commonest words and punctuation marks that every
candidate author uses ("the", "which", "we", commas, semicolons, dashes...), all other tokens in one
"other" count, equal priors. It is fitted on each author's *training* prose (the instruct train split,
code left out: a chat answer is prose) and checked on their *held-out* prose cut into snippets as long
as the answers being attributed. That check (``calibration``) is the most a perfect twin could score:
an attribution share is read against it, never alone.

Why not Burrows' Delta (``stylometry.py``, still the canary's style distance): fitted the same way on the
two sample authors, it put 98 % of Ada's and 31 % of Oskar's 36-word held-out snippets with their
author (this classifier: 81 % and 88 %), so the share it gave a twin said more about the measure than
about the twin (docs/benchmarks.md, "Twin specificity").
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass
from typing import Any

from twin_core.evaluation.metrics import wilson_ci95

VOCAB_SIZE = 100  # tokens kept (words and punctuation every author uses), by frequency
_TOKEN = re.compile(r"[a-z]+(?:'[a-z]+)?|\d+|[.,;:!?()\"'\-\u2013\u2014]")


def tokens(text: str) -> list[str]:
    """Lower-cased words (apostrophes kept), numbers and punctuation marks: habits, more than topics."""
    return _TOKEN.findall((text or "").lower())


@dataclass(frozen=True)
class Attributor:
    authors: list[str]  # sorted author slugs
    vocab: list[str]
    classifier: Any  # sklearn MultinomialNB over vocab + "other"

    def _features(self, counts: list[Counter[str]]) -> Any:
        import numpy as np

        rows = []
        for c in counts:
            kept = [c[w] for w in self.vocab]
            rows.append([*kept, c.total() - sum(kept)])
        return np.asarray(rows, dtype=float).reshape(len(counts), len(self.vocab) + 1)

    def predict(self, texts: list[str]) -> list[str]:
        """The most probable author of each text; "" for a text without tokens."""
        counts = [Counter(tokens(t)) for t in texts]
        kept = [c for c in counts if c]
        found = iter(self.classifier.predict(self._features(kept)) if kept else [])
        return [str(next(found)) if c else "" for c in counts]


def fit_attributor(corpora: dict[str, list[str]], vocab_size: int = VOCAB_SIZE) -> Attributor:
    """Fit on each author's texts (author slug -> texts). ValueError below two authors with tokens."""
    from sklearn.naive_bayes import MultinomialNB

    pooled = {a: Counter(w for t in texts for w in tokens(t)) for a, texts in corpora.items()}
    authors = sorted(a for a, c in pooled.items() if c)
    if len(authors) < 2:
        raise ValueError("attribution needs at least two authors with text")
    shared = set.intersection(*(set(pooled[a]) for a in authors))  # a word one author never uses is a topic
    total = sum((pooled[a] for a in authors), Counter())
    vocab = sorted(shared, key=lambda w: (-total[w], w))[:vocab_size]
    attributor = Attributor(authors, vocab, MultinomialNB(alpha=1.0, fit_prior=False))
    attributor.classifier.fit(attributor._features([pooled[a] for a in authors]), authors)
    return attributor


def snippets(texts: list[str], words: int) -> list[str]:
    """Consecutive, non-overlapping runs of exactly ``words`` words (a shorter tail is dropped)."""
    out = []
    for text in texts:
        split = text.split()
        out += [" ".join(split[i : i + words]) for i in range(0, len(split) - words + 1, words)]
    return out


def calibration(attributor: Attributor, held_out: dict[str, list[str]], words: int) -> dict[str, Any]:
    """Share of each author's held-out snippets of ``words`` words attributed to that author, with its
    Wilson 95 % interval and sample size; ``accuracy`` is the mean over authors (None without snippets)."""
    per_author: dict[str, Any] = {}
    for author in attributor.authors:
        pieces = snippets(held_out.get(author, []), words)
        correct = sum(found == author for found in attributor.predict(pieces))
        per_author[author] = {
            "snippets": len(pieces),
            "correct": correct,
            "accuracy": round(correct / len(pieces), 4) if pieces else None,
            "ci95": wilson_ci95(correct, len(pieces)),
        }
    accuracies = [v["accuracy"] for v in per_author.values()]
    accuracy = None if None in accuracies else round(sum(accuracies) / len(accuracies), 4)
    return {"words": words, "accuracy": accuracy, "authors": per_author}
