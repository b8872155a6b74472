"""The text tools the drift descriptors need (embedder, language detector, vocabulary), injected by the
caller so that this package never loads a model by itself; and the Evidently descriptors built on them."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from twin_core.monitoring.config import Signal

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


def descriptors(signals: list[Signal], tools: TextTools) -> list[Any]:
    """Evidently descriptors for the text signals: length, out-of-vocabulary share, language."""
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
