"""Quality steps of a dataset build; each reports what it removed.

Exact and near-duplicate removal, length/language/boilerplate filters and decontamination (train rows
sharing an n-gram with the test split are dropped). The split by document is ``splits.py``.
"""

from __future__ import annotations

import hashlib
import re
from collections import Counter
from typing import Any

from twin_core.domain.language import detect_language

Row = dict[str, Any]
_BOILERPLATE = re.compile(
    r"(?i)\b(subscribe|sign up|follow me|clap|newsletter|all rights reserved|cookie|share this|read more|"
    r"min read|click here|buy me a coffee)\b"
)
_WS = re.compile(r"\s+")
WHY = {  # what each removal reason means, for the dataset report
    "malformed_reply": "the LLM's reply for the extract was not the JSON asked for",
    "too_short": "answer shorter than TWIN_DATASETS_MIN_ANSWER_CHARS",
    "too_long": "answer longer than TWIN_DATASETS_MAX_ANSWER_CHARS",
    "language": "prose not in TWIN_DATASETS_LANGUAGE",
    "boilerplate": "mostly subscribe/share/cookie furniture",
    "exact_duplicate": "same normalised answer as an earlier row",
    "near_duplicate": "answer's word 5-grams overlap an earlier row's ≥ TWIN_DATASETS_NEAR_DUPLICATE_JACCARD",
    "contaminated": "a train row sharing a word n-gram with a held-out row (lines recurring in ≥ 3 documents ignored)",
}


def _norm(text: str) -> str:
    return _WS.sub(" ", text.lower()).strip()


def _ngrams(text: str, n: int) -> set[str]:
    words = _norm(text).split()
    return {" ".join(words[i : i + n]) for i in range(max(len(words) - n + 1, 0))}


def filter_rows(
    rows: list[Row], *, text_key: str, min_chars: int, max_chars: int, language: str
) -> tuple[list[Row], Counter]:
    """Length, language (prose only) and boilerplate filters."""
    kept: list[Row] = []
    removed: Counter = Counter()
    for row in rows:
        text = row[text_key]
        if len(text) < min_chars:
            removed["too_short"] += 1
        elif len(text) > max_chars:
            removed["too_long"] += 1
        elif row.get("category") != "repositories" and language and detect_language(text) not in (language, None):
            removed["language"] += 1
        elif len(_BOILERPLATE.findall(text)) >= 3 or (
            len(text) < 400 and _BOILERPLATE.search(text) and len(_BOILERPLATE.findall(text)) * 60 > len(text) / 4
        ):
            removed["boilerplate"] += 1
        else:
            kept.append(row)
    return kept, removed


def deduplicate(rows: list[Row], *, text_key: str, jaccard: float) -> tuple[list[Row], Counter]:
    """Exact duplicates (normalised text), then near duplicates (word 5-gram Jaccard ≥ ``jaccard``)."""
    removed: Counter = Counter()
    seen: set[str] = set()
    exact: list[Row] = []
    for row in rows:
        h = hashlib.sha256(_norm(row[text_key]).encode()).hexdigest()
        if h in seen:
            removed["exact_duplicate"] += 1
            continue
        seen.add(h)
        exact.append(row)
    kept: list[Row] = []
    grams: list[set[str]] = []
    for row in exact:
        g = _ngrams(row[text_key], 5)
        if g and any(len(g & o) / len(g | o) >= jaccard for o in grams if o):
            removed["near_duplicate"] += 1
            continue
        kept.append(row)
        grams.append(g)
    return kept, removed


def recurring_lines(texts: list[str], min_documents: int = 3) -> frozenset[str]:
    """Normalised lines found in ≥ ``min_documents`` of an author's documents: headers, footers,
    sign-offs, newsletter furniture. They are the author's, but not evidence that two texts overlap."""
    seen: Counter = Counter()
    for text in texts:
        seen.update({_norm(line) for line in text.splitlines() if _norm(line)})
    return frozenset(line for line, n in seen.items() if n >= min_documents)


def _content_ngrams(text: str, n: int, ignore_lines: frozenset[str]) -> set[str]:
    kept = [line for line in text.splitlines() if _norm(line) not in ignore_lines]
    return _ngrams("\n".join(kept), n)


def decontaminate(
    rows: list[Row], *, text_keys: tuple[str, ...], n: int, ignore_lines: frozenset[str] = frozenset()
) -> tuple[list[Row], Counter]:
    """Drop train rows that share a word ``n``-gram with a test row, ``ignore_lines`` left out of both."""
    test_grams: set[str] = set()
    for r in rows:
        if r["split"] == "test":
            for k in text_keys:
                test_grams |= _content_ngrams(r[k], n, ignore_lines)
    kept: list[Row] = []
    removed: Counter = Counter()
    for r in rows:
        if r["split"] == "train" and any(_content_ngrams(r[k], n, ignore_lines) & test_grams for k in text_keys):
            removed["contaminated"] += 1
            continue
        kept.append(r)
    return kept, removed


def whole_sentences(text: str) -> str:
    """``text`` cut after its last full sentence (code and text without sentence ends are kept whole)."""
    stripped = text.strip()
    if stripped.endswith((".", "!", "?", '"', "”", ")")):
        return stripped
    m = list(re.finditer(r"[.!?][\"”)]?(?=\s|$)", stripped))
    return stripped[: m[-1].end()] if m else stripped
