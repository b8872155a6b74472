"""features.feature_store.search_chunks: the one retrieval over the embedded collections."""

from __future__ import annotations

from typing import Any

import pytest

from twin_core.domain.documents import Category
from twin_core.domain.ids import chunk_id
from twin_core.errors import BackendUnavailable, ConfigError
from twin_core.features.feature_store import ChunkQuery, embedded_collection, search_chunks, search_chunks_batch
from twin_core.stores.vectors import VectorPoint, VectorQuery, open_vector_store


def _point(i: int, author: str, vec: list[float], category: str = "posts") -> VectorPoint:
    cid = chunk_id(f"doc-{i}", 0, "h")
    payload = {
        "author_id": author,
        "author_full_name": author.upper(),
        "category": category,
        "platform": "linkedin",
        "content": f"text {i}",
        "link": f"https://x/{i}",
        "document_id": f"doc-{i}",
        "chunk_id": cid,
        "chunk_index": 0,
        "token_count": 2,
    }
    return VectorPoint(cid, payload, vec)


@pytest.fixture
def store(settings: Any) -> Any:
    vs = open_vector_store(settings)
    for cat in (Category.POSTS, Category.ARTICLES):
        vs.ensure_collection(embedded_collection(cat), 3, metadata={"model_id": "m", "dim": 3})
    vs.upsert("embedded_posts", [_point(0, "a", [1, 0, 0]), _point(1, "b", [1, 0, 0]), _point(2, "a", [0, 1, 0])])
    vs.upsert("embedded_articles", [_point(3, "a", [0.9, 0.1, 0], "articles")])
    yield vs
    vs.close()


def test_best_first_across_categories_for_one_author(store: Any) -> None:
    hits = search_chunks(store, [1, 0, 0], 3, model_id="m", dim=3, author_id="a")
    assert [h.document_id for h in hits] == ["doc-0", "doc-3", "doc-2"]
    assert [h.category for h in hits] == [Category.POSTS, Category.ARTICLES, Category.POSTS]
    assert {h.author_id for h in hits} == {"a"}
    assert hits[0].text == "text 0"
    assert hits[0].author_full_name == "A"
    assert hits[0].vector is None  # not asked
    assert "vector" not in hits[0].model_dump()


def test_vectors_when_asked_and_categories(store: Any) -> None:
    hits = search_chunks(
        store, [1, 0, 0], 5, model_id="m", author_id="a", categories=[Category.ARTICLES], with_vectors=True
    )
    assert [h.document_id for h in hits] == ["doc-3"]
    assert hits[0].vector == pytest.approx([0.9939, 0.1104, 0.0], abs=1e-3)  # cosine collections store unit vectors


def test_without_author_every_author(store: Any) -> None:
    hits = search_chunks(store, [1, 0, 0], 10, model_id="m", categories=[Category.POSTS])
    assert sorted(h.document_id for h in hits) == ["doc-0", "doc-1", "doc-2"]


def test_a_hit_of_another_author_is_dropped_even_if_the_filter_failed(store: Any, monkeypatch: Any) -> None:
    real = store.search_batch

    def unfiltered(name: str, queries: Any, limit: int, *, with_vectors: bool = False) -> list:
        # a store that ignores the filter
        return real(name, [VectorQuery(q.vector) for q in queries], limit, with_vectors=with_vectors)

    monkeypatch.setattr(store, "search_batch", unfiltered)
    hits = search_chunks(store, [1, 0, 0], 10, model_id="m", author_id="a", categories=[Category.POSTS])
    assert sorted(h.document_id for h in hits) == ["doc-0", "doc-2"]
    both = search_chunks_batch(
        store,
        [ChunkQuery([1, 0, 0], "a", [Category.POSTS]), ChunkQuery([1, 0, 0], "b", [Category.POSTS])],
        10,
        model_id="m",
    )
    assert [sorted(h.document_id for h in hits) for hits in both] == [["doc-0", "doc-2"], ["doc-1"]]


def test_a_batch_gives_each_query_what_it_gets_alone_in_one_request_per_collection(
    store: Any, monkeypatch: Any
) -> None:
    queries = [
        ChunkQuery([1, 0, 0], "a"),
        ChunkQuery([0, 1, 0], "a", [Category.POSTS]),
        ChunkQuery([1, 0, 0], "b"),
        ChunkQuery([0.5, 0.5, 0], None, [Category.ARTICLES, Category.POSTS]),
        ChunkQuery([1, 0, 0], "nobody"),
    ]
    alone = [
        search_chunks(store, q.vector, 3, model_id="m", author_id=q.author_id, categories=q.categories) for q in queries
    ]
    calls: list[tuple[str, int]] = []
    real = store.search_batch

    def counting(name: str, batch: Any, limit: int, *, with_vectors: bool = False) -> list:
        calls.append((name, len(batch)))
        return real(name, batch, limit, with_vectors=with_vectors)

    monkeypatch.setattr(store, "search_batch", counting)
    together = search_chunks_batch(store, queries, 3, model_id="m", dim=3)
    assert [[(h.chunk_id, h.score) for h in hits] for hits in together] == [
        [(h.chunk_id, h.score) for h in hits] for hits in alone
    ]
    assert [[h.document_id for h in hits] for hits in together][:3] == [
        ["doc-0", "doc-3", "doc-2"],
        ["doc-2", "doc-0"],
        ["doc-1"],
    ]
    assert together[4] == []
    assert sorted(calls) == [("embedded_articles", 4), ("embedded_posts", 5)]  # one request per collection
    assert search_chunks_batch(store, [], 3, model_id="m") == []


def test_another_model_is_refused_and_checked_once(store: Any) -> None:
    with pytest.raises(ConfigError, match="embedded with m"):
        search_chunks(store, [1, 0, 0], 3, model_id="other", author_id="a")
    with pytest.raises(ConfigError, match="dim 3"):
        search_chunks(store, [1, 0, 0], 3, model_id="m", dim=4, author_id="a")
    checked: set[str] = set()
    search_chunks(store, [1, 0, 0], 3, model_id="m", dim=3, author_id="a", checked=checked)
    assert checked == {"embedded_posts", "embedded_articles"}


def test_a_store_failure_is_backend_unavailable(store: Any, monkeypatch: Any) -> None:
    def broken(*args: Any, **kwargs: Any) -> list:
        raise OSError("connection reset")

    monkeypatch.setattr(store, "search_batch", broken)
    with pytest.raises(BackendUnavailable, match="connection reset"):
        search_chunks(store, [1, 0, 0], 3, model_id="m", author_id="a")
