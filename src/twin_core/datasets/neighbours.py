"""What a dataset build asks the feature store: the retrieved context of each instruction row, and
another author's passage on the nearest topic for author-contrast pairs.

Both go through ``features.feature_store.search_chunks``, the retrieval serving uses, over the
``embedded_*`` collections. A row's context never comes from its own document (the model must learn
to use context, not to copy it), and a training row's context never from a held-out document (that
would leak the test split into training). Without embedded chunks (``twin features run`` not run),
rows carry no context and the metadata says why.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from twin_core.domain.ids import user_id

log = logging.getLogger(__name__)
Row = dict[str, Any]


@dataclass(frozen=True)
class Passage:
    text: str
    link: str
    author: str
    document_id: str


class Neighbours:
    """An open vector store and an embedder; ``available`` is False when no chunk is embedded."""

    def __init__(self, store: Any, embedder: Any, k: int, candidates: int) -> None:
        self.store, self.embedder = store, embedder
        self.k, self.candidates = k, max(candidates, k)
        self.available = embedder is not None and _has_chunks(store)  # the store does not change during a build

    @classmethod
    def open(cls, settings: Any, store: Any, embedder: Any = None) -> Neighbours:
        """Over ``store`` (the caller closes it); the embedding model is loaded only if chunks are embedded."""
        if embedder is None and _has_chunks(store):
            from twin_core.features.embedding_model import load_embedder

            embedder = load_embedder(settings)
        return cls(store, embedder, settings.rag.top_k, settings.rag.candidates)

    def authors(self) -> list[str]:
        """The author ids with embedded chunks (the other authors decide the contrast pairs)."""
        from twin_core.features.feature_store import read_state

        return sorted({str(s.get("author_id")) for s in read_state(self.store).values()})

    def _search(self, texts: list[str], author_id: str | None) -> list[list[Any]]:
        from twin_core.features.feature_store import search_chunks

        vectors = self.embedder.encode(texts) if texts else []
        model, dim, k = self.embedder.model_id, self.embedder.dim, self.candidates
        return [
            search_chunks(self.store, list(map(float, v)), k, model_id=model, dim=dim, author_id=author_id)
            for v in vectors
        ]

    def attach_contexts(self, rows: list[Row], author: str, max_tokens: int) -> dict[str, Any]:
        """Set ``context`` (texts, best first, within ``max_tokens``) and ``context_links`` on every row;
        returns the counts."""
        held_out = {r["document_id"] for r in rows if r["split"] == "test"}
        results = self._search([r["instruction"] for r in rows], user_id(author))
        for row, hits in zip(rows, results, strict=True):
            banned = {row["document_id"]} | (held_out if row["split"] == "train" else set())
            hits = sorted((h for h in hits if h.document_id not in banned), key=lambda h: -h.score)[: self.k]
            texts = within_budget([h.text for h in hits], max_tokens)
            row["context"] = texts
            row["context_links"] = [h.link for h in hits][: len(texts)]
        with_context = sum(1 for r in rows if r["context"])
        return {
            "k": self.k,
            "max_tokens": max_tokens,
            "rows_with_context": with_context,
            "rows_without_context": len(rows) - with_context,
        }

    def other_author_passages(self, texts: list[str], author: str) -> list[Passage | None]:
        """For each text, the nearest passage written by any other author (None when there is none)."""
        own = user_id(author)
        out: list[Passage | None] = []
        for hits in self._search(texts, None):
            best = max((h for h in hits if h.author_id != own), key=lambda h: h.score, default=None)
            out.append(Passage(best.text, best.link, best.author_full_name, best.document_id) if best else None)
        return out


def within_budget(texts: list[str], max_tokens: int) -> list[str]:
    """The texts (best first) that fit ``max_tokens`` (~4 characters a token), as the serving prompt
    keeps them; the first one is cut to whole sentences when it alone is over, so a row has some context."""
    from twin_core.datasets.quality import whole_sentences

    left, kept = max_tokens * 4, []
    for text in texts:
        if len(text) <= left:
            kept.append(text)
            left -= len(text)
        elif not kept:
            cut = whole_sentences(text[:left])
            return [cut] if cut else []
    return kept


def _has_chunks(store: Any) -> bool:
    from twin_core.features.feature_store import embedded_collections

    return any(next(iter(store.scroll(name, batch_size=1)), None) is not None for name in embedded_collections(store))


def snapshot_label(settings: Any, neighbours: Neighbours | None) -> dict[str, Any]:
    """What decides the contexts and contrast pairs, for the snapshot hash: whether chunks are embedded
    (a features run changes it), with which model, k, and which authors the feature store holds."""
    if neighbours is None or not neighbours.available:
        return {"embedded": False}
    return {
        "embedded": True,
        "model": neighbours.embedder.model_id,
        "k": neighbours.k,
        "candidates": neighbours.candidates,
        "authors": neighbours.authors(),
    }
