import pytest
from qdrant_client import models

from twin_core.domain.ids import chunk_id
from twin_core.errors import BackendUnavailable
from twin_core.settings import load_settings
from twin_core.stores.vectors import open_vector_store


def _point(i: int, author: str, vec: list[float]) -> models.PointStruct:
    return models.PointStruct(
        id=chunk_id("doc", i, "h"), vector=vec, payload={"author_id": author, "category": "posts"}
    )


def test_embedded_collection_filter_and_idempotent_upsert(settings) -> None:
    vs = open_vector_store(settings)
    vs.ensure_collection("embedded_posts", 3, metadata={"model_id": "m", "dim": 3})
    vs.ensure_collection("embedded_posts", 3)  # idempotent
    points = [_point(0, "a", [1, 0, 0]), _point(1, "b", [0.9, 0.1, 0]), _point(2, "a", [0, 1, 0])]
    vs.upsert("embedded_posts", points)
    vs.upsert("embedded_posts", points)
    assert vs.count("embedded_posts") == 3
    hits = vs.search("embedded_posts", [1, 0, 0], 5, author_id="a")
    assert {h.payload["author_id"] for h in hits} == {"a"}
    assert len(hits) == 2
    assert vs.collection_metadata("embedded_posts") == {"model_id": "m", "dim": 3}
    vs.delete_where("embedded_posts", author_id="b")
    assert vs.count("embedded_posts") == 2
    assert len(list(vs.scroll("embedded_posts", batch_size=1))) == 2
    vs.close()


def test_payload_only_collection(settings) -> None:
    vs = open_vector_store(settings)
    vs.ensure_collection("cleaned_posts", None)
    vs.upsert("cleaned_posts", [models.PointStruct(id=chunk_id("d", 0, "x"), vector={}, payload={"content": "hi"})])
    assert [p.payload["content"] for p in vs.scroll("cleaned_posts")] == ["hi"]
    vs.close()


def test_second_opener_of_embedded_store_gets_clear_error(settings) -> None:
    first = open_vector_store(settings)
    try:
        with pytest.raises(BackendUnavailable, match="in use by another process"):
            open_vector_store(settings)
    finally:
        first.close()


def test_unreachable_qdrant_server_fails_fast(twin_home) -> None:
    with pytest.raises(BackendUnavailable, match="127.0.0.1:1"):
        open_vector_store(load_settings(qdrant_url="http://127.0.0.1:1", qdrant_timeout_s=1))
