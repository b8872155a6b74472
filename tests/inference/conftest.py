"""Session fixtures for the inference tests: the sample corpus in embedded stores, and the tiny LLM.

The vector fixture is built by the real feature pipeline (`build_rag_home`), with a second author
holding one secret chunk. The LLM is loaded once per session; its converted copy lives in the
pytest cache so that later runs skip the GGUF de-quantization.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from support.rag_home import build_rag_home

from twin_core.settings import updated


@pytest.fixture(scope="session")
def llm_models_dir(request: pytest.FixtureRequest) -> Path:
    return Path(request.config.cache.mkdir("twin-llm-models"))


@pytest.fixture(scope="session")
def rag_settings(tmp_path_factory: pytest.TempPathFactory, llm_models_dir: Path) -> Any:
    settings = build_rag_home(tmp_path_factory.mktemp("rag") / "twin", llm_models_dir)
    # small prompts and one torch thread: fast and steady on a shared 2-core machine
    return updated(settings, llm_threads=1, rag_context_tokens=256)


@pytest.fixture(scope="session")
def tiny_llm(rag_settings: Any) -> Any:
    from twin_core.llm.loading import load_local_llm

    return load_local_llm(rag_settings)


@pytest.fixture(scope="session")
def rag_pipeline(rag_settings: Any, tiny_llm: Any) -> Any:
    """A full pipeline on the sample stores (it holds the local Qdrant folder for the session)."""
    from twin_core.inference.pipeline import open_pipeline

    return open_pipeline(rag_settings, llm=tiny_llm)
