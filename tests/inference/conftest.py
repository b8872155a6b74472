"""Session fixtures for the inference tests: the sample corpus in embedded stores, and the tiny LLM.

The vector fixture is written here directly with qdrant-client and the embedding model (one point
per paragraph group, the feature pipeline's payload shape), so these tests do not depend on the
feature stage's internals. The LLM is loaded once per session; its converted copy lives in the
pytest cache so that later runs skip the GGUF de-quantization.
"""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[2]
SAMPLE = REPO / "data" / "sample"


def build_rag_home(home: Path, models_dir: Path, extra_author_docs: bool = True) -> Any:
    """Import the sample corpus and index it into ``embedded_*`` collections; returns the settings."""
    from qdrant_client import models

    from twin_core.domain.documents import Category
    from twin_core.features.embedding_model import load_embedder
    from twin_core.settings import load_settings
    from twin_core.stores.vectors import open_vector_store
    from twin_core.stores.warehouse import open_warehouse
    from twin_core.warehouse_io import import_paths

    settings = load_settings(home=home, llm_models_dir=models_dir)
    wh = open_warehouse(settings)
    import_paths(wh, [SAMPLE])
    other, _ = wh.get_or_create_user("Bob Marlowe")
    embedder = load_embedder(settings)
    store = open_vector_store(settings)
    try:
        for cat in Category:
            rows: list[dict[str, Any]] = []
            for doc in wh.iter_documents(cat):
                paras = [p.strip() for p in doc.text.split("\n\n") if p.strip()]
                for i in range(0, len(paras), 3):
                    rows.append(
                        {
                            "content": "\n\n".join(paras[i : i + 3]),
                            "link": doc.link,
                            "document_id": doc.id,
                            "author_id": doc.author_id,
                            "author_full_name": doc.author_full_name,
                            "category": cat.value,
                            "platform": doc.platform,
                            "chunk_index": i // 3,
                        }
                    )
            if cat is Category.ARTICLES and extra_author_docs:
                rows.append(
                    {
                        "content": "Bob Marlowe's secret: SECRET-BOB-TOKEN. Idempotency keys and upserts.",
                        "link": "https://bob.example/secret",
                        "document_id": "bob-doc",
                        "author_id": other.id,
                        "author_full_name": other.full_name,
                        "category": cat.value,
                        "platform": "bob",
                        "chunk_index": 0,
                    }
                )
            if not rows:
                continue
            name = f"embedded_{cat.value}"
            store.ensure_collection(name, embedder.dim)
            vectors = embedder.encode([r["content"] for r in rows])
            points = []
            for row, vec in zip(rows, vectors, strict=True):
                cid = str(uuid.uuid5(uuid.NAMESPACE_URL, f"{row['link']}#{row['chunk_index']}"))
                points.append(models.PointStruct(id=cid, vector=vec.tolist(), payload={**row, "chunk_id": cid}))
            store.upsert(name, points)
    finally:
        store.close()  # local Qdrant: one process at a time may hold the folder
    return settings


@pytest.fixture(scope="session")
def llm_models_dir(request: pytest.FixtureRequest) -> Path:
    return Path(request.config.cache.mkdir("twin-llm-models"))


@pytest.fixture(scope="session")
def rag_settings(tmp_path_factory: pytest.TempPathFactory, llm_models_dir: Path) -> Any:
    return build_rag_home(tmp_path_factory.mktemp("rag") / "twin", llm_models_dir)


@pytest.fixture(scope="session")
def tiny_llm(rag_settings: Any) -> Any:
    from twin_core.inference.local_llm import load_local_llm

    return load_local_llm(rag_settings)


@pytest.fixture(scope="session")
def rag_pipeline(rag_settings: Any, tiny_llm: Any) -> Any:
    """A full pipeline on the sample stores (it holds the local Qdrant folder for the session)."""
    from twin_core.inference.pipeline import open_pipeline

    return open_pipeline(rag_settings, llm=tiny_llm)
