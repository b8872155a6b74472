"""The feature pipeline (clean -> chunk -> embed -> Qdrant) and the retrieval helper built on it.

Public entry points (importing this package loads no model and opens no store):
- ``search(query, k, author=None, categories=None) -> list[ScoredChunk]`` (twin_core.features.retrieval)
- ``load_embedder(settings)`` (twin_core.features.embedding_model)
- ``run_features(settings, full=False, author=None)`` (twin_core.features.pipeline)
"""

from twin_core.features.retrieval import ScoredChunk, search

__all__ = ["ScoredChunk", "search"]
