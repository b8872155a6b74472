"""A feature store holding cleaned documents, written with the real cleaning code and the embedded
Qdrant (no embedding model: the dataset build reads only the cleaned_* collections), optionally with
paragraph chunks embedded by a tiny deterministic embedder (``HashEmbedder``) so the build's retrieval
(contexts, other-author passages) runs without loading a model. Used by the dataset tests and
benchmarks/dataset_build.py."""

from __future__ import annotations

import hashlib
import re
from typing import Any

DIM = 384  # the collections' dimension (the configured embedding model's)


class HashEmbedder:
    """Bag of hashed words, unit-normalised: texts sharing words are near, as a real embedder's would be."""

    def __init__(self, model_id: str, dim: int = DIM) -> None:
        self.model_id, self.dim = model_id, dim

    def encode(self, texts: list[str], **_: Any) -> Any:
        import numpy as np

        out = np.zeros((len(texts), self.dim), dtype="float32")
        for i, text in enumerate(texts):
            for word in re.findall(r"[a-z]{4,}", text.lower()):
                out[i, int(hashlib.md5(word.encode()).hexdigest()[:8], 16) % self.dim] += 1.0
        norms = np.linalg.norm(out, axis=1, keepdims=True)
        return out / np.where(norms == 0, 1, norms)


def _chunks(doc: Any, embedder: HashEmbedder) -> list[Any]:
    from twin_core.domain.features import EmbeddedChunk, SourceRef
    from twin_core.domain.ids import chunk_id, content_hash

    paragraphs = [p.strip() for p in doc.content.split("\n\n") if len(p.strip()) > 40]
    vectors = embedder.encode(paragraphs) if paragraphs else []
    return [
        EmbeddedChunk(
            **SourceRef.fields_of(doc),
            id=chunk_id(doc.id, i, content_hash(text)),
            document_id=doc.id,
            chunk_index=i,
            content=text,
            content_hash=content_hash(text),
            embedding=[float(x) for x in vec],
            model_id=embedder.model_id,
            dim=embedder.dim,
        )
        for i, (text, vec) in enumerate(zip(paragraphs, vectors, strict=True))
    ]


def write_cleaned_docs(settings: Any, raw_docs: list[Any], embedder: HashEmbedder | None = None) -> None:
    from twin_core.features.cleaning import clean_document
    from twin_core.features.feature_store import ensure_collections, mark_done, write_chunks, write_cleaned
    from twin_core.stores.vectors import open_vector_store

    store = open_vector_store(settings)
    try:
        ensure_collections(store, settings.embedding_model_id, DIM)
        cleaned = [clean_document(d) for d in raw_docs]
        write_cleaned(store, cleaned)
        if embedder is not None:
            write_chunks(store, [c for d in cleaned for c in _chunks(d, embedder)])
            mark_done(store, {d.id: {"author_id": d.author_id, "category": d.category.value} for d in cleaned})
    finally:
        store.close()
