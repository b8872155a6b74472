"""Language detection by stop-word overlap, using the stop-word lists shipped with newspaper4k.

No extra dependency and no model: good enough to tell English from Spanish from German and to flag
text with no language at all (code dumps, gibberish, challenge pages).
"""

from __future__ import annotations

import importlib.util
import re
from functools import lru_cache
from pathlib import Path

_WORD = re.compile(r"[^\W\d_]+", re.UNICODE)
MIN_WORDS = 8
MIN_STOPWORD_RATIO = 0.28


@lru_cache(maxsize=1)
def _stopwords() -> dict[str, frozenset[str]]:
    spec = importlib.util.find_spec("newspaper")  # locate the data without importing the package
    if spec is None or not spec.submodule_search_locations:
        return {}
    folder = Path(next(iter(spec.submodule_search_locations))) / "resources" / "text"
    lists: dict[str, frozenset[str]] = {}
    for path in sorted(folder.glob("stopwords-*.txt")):
        lang = path.stem.split("-", 1)[1]
        words = {w.strip().lower() for w in path.read_text(encoding="utf-8", errors="ignore").splitlines()}
        lists[lang] = frozenset(w for w in words if w and not w.startswith("#"))
    return lists


def detect_language(text: str) -> str | None:
    """ISO 639-1 code of the best-matching language, or None when no language is evident."""
    words = [w.lower() for w in _WORD.findall(text or "")[:5000] if len(w) > 1]
    if len(words) < MIN_WORDS:
        return None
    best, best_ratio = None, 0.0
    for lang, stops in _stopwords().items():
        ratio = sum(1 for w in words if w in stops) / len(words)
        if ratio > best_ratio:
            best, best_ratio = lang, ratio
    return best if best_ratio >= MIN_STOPWORD_RATIO else None
