"""The text tools the drift descriptors need (embedder, language detector, vocabulary), injected by the
caller so that this package never loads a model by itself; and the out-of-vocabulary share. The descriptors
themselves are computed once per check (``evidently_metrics._feature``) and handed to Evidently as values."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

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


def oov_share(text: Any, vocabulary: frozenset[str]) -> float:
    """Share of the words (a-z runs) of ``text`` that are not in ``vocabulary`` (0 for no words)."""
    words = _WORD.findall(str(text or "").lower())
    if not words:
        return 0.0
    return sum(1 for w in words if w not in vocabulary) / len(words)
