import pytest

from twin_core.domain.ids import chunk_id
from twin_core.errors import BackendUnavailable
from twin_core.settings import load_settings
from twin_core.stores.vectors import VectorHit, VectorPoint, open_vector_store


def _point(i: int, author: str, vec: list[float]) -> VectorPoint:
    return VectorPoint(chunk_id("doc", i, "h"), {"author_id": author, "category": "posts"}, vec)


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
    assert all(type(h) is VectorHit for h in hits)  # the store's own type, never a Qdrant record
    assert [h.id for h in hits] == [chunk_id("doc", 0, "h"), chunk_id("doc", 2, "h")]  # best first
    assert hits[0].score == pytest.approx(1.0)
    assert hits[0].vector is None  # not asked
    assert vs.search("embedded_posts", [1, 0, 0], 1, with_vectors=True)[0].vector == pytest.approx([1, 0, 0])
    assert vs.collection_metadata("embedded_posts") == {"model_id": "m", "dim": 3}
    vs.delete_where("embedded_posts", author_id="b")
    assert vs.count("embedded_posts") == 2
    scrolled = list(vs.scroll("embedded_posts", batch_size=1))
    assert all(type(p) is VectorPoint for p in scrolled)
    assert sorted(p.id for p in scrolled) == sorted([chunk_id("doc", 0, "h"), chunk_id("doc", 2, "h")])
    vs.close()


def test_payload_only_collection(settings) -> None:
    vs = open_vector_store(settings)
    vs.ensure_collection("cleaned_posts", None)
    vs.upsert("cleaned_posts", [VectorPoint(chunk_id("d", 0, "x"), {"content": "hi"})])
    assert [(p.payload["content"], p.vector) for p in vs.scroll("cleaned_posts")] == [("hi", None)]
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
