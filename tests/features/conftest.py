"""Fixtures of the feature-pipeline tests: the embedding model is loaded once per session."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest


@pytest.fixture(scope="session")
def embedder() -> Any:
    from twin_core.features.embedding_model import load_embedder
    from twin_core.settings import load_settings

    return load_embedder(load_settings())


@pytest.fixture
def sample_warehouse(warehouse: Any, sample_dir: Path) -> Any:
    """The warehouse of a fresh TWIN_HOME, filled with the sample corpus."""
    from twin_core.stores.warehouse_io import import_paths

    import_paths(warehouse, [sample_dir])
    return warehouse


@pytest.fixture
def featurize(settings: Any, embedder: Any) -> Any:
    """``featurize(**kw)`` runs the pipeline in-process with the session's model; returns the result dict."""
    from twin_core.features.pipeline import run_features

    def _run(**kwargs: Any) -> dict:
        return run_features(settings, embedder=embedder, **kwargs)

    return _run


@pytest.fixture
def points(settings: Any) -> Any:
    """``points()`` -> {point id: payload} of every embedded_* collection (opens and closes the store)."""
    from twin_core.domain.documents import Category
    from twin_core.features.feature_store import embedded_collection
    from twin_core.stores.vectors import open_vector_store

    def _points() -> dict[str, dict]:
        store = open_vector_store(settings)
        try:
            return {str(p.id): p.payload for c in Category for p in store.scroll(embedded_collection(c))}
        finally:
            store.close()

    return _points
