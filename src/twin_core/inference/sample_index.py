"""Index a sample corpus for RAG without the feature stage: for tests and benchmarks only.

Imports a Handbook-format backup into the warehouse, then writes ``embedded_*`` collections directly
with qdrant-client and the embedding model (one point per group of three paragraphs, the feature
pipeline's payload shape). Optionally adds a second author, Bob Marlowe, with one secret chunk, to
check that retrieval never crosses authors. The real pipeline is `twin features run`.
"""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

SAMPLE = Path(__file__).resolve().parents[3] / "data" / "sample"
SECRET = "SECRET-BOB-TOKEN"


def build_rag_home(home: Path, models_dir: Path, extra_author_docs: bool = True, sample: Path = SAMPLE) -> Any:
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
    import_paths(wh, [sample])
    other = wh.get_or_create_user("Bob Marlowe")[0] if extra_author_docs else None
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
            if cat is Category.ARTICLES and other is not None:
                rows.append(
                    {
                        "content": f"Bob Marlowe's secret: {SECRET}. Idempotency keys and upserts.",
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
