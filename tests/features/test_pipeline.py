"""The pipeline on real embedded stores: idempotent, incremental, deletions propagate, resumable."""

from __future__ import annotations

from typing import Any

import pytest

from twin_core.domain.documents import Category, PostDocument
from twin_core.errors import ConfigError
from twin_core.settings import updated

pytestmark = pytest.mark.slow


def _doc_ids(points: dict[str, dict], document_id: str) -> set[str]:
    return {pid for pid, p in points.items() if p["document_id"] == document_id}


def test_full_run_then_idempotent_rerun(sample_warehouse: Any, featurize: Any, points: Any) -> None:
    first = featurize()
    assert first["processed"] == 30
    assert first["unchanged"] == 0
    assert first["skipped"] == 0
    assert first["points"] == first["chunks"] == len(points()) > 30
    assert first["cleaned"] == 30
    before = points()
    assert all(p["token_count"] <= 256 for p in before.values())
    assert {p["model_id"] for p in before.values()} == {"sentence-transformers/all-MiniLM-L6-v2"}
    again = featurize()
    assert (again["processed"], again["unchanged"], again["deleted"], again["chunks"]) == (0, 30, 0, 0)
    assert "model_load" not in again["timings"]  # nothing to embed: the model is not even needed
    assert points().keys() == before.keys()
    full = featurize(full=True)
    assert full["processed"] == 30
    assert points().keys() == before.keys()


def test_changed_document_reembeds_only_its_chunks(sample_warehouse: Any, featurize: Any, points: Any) -> None:
    featurize()
    before = points()
    post = sample_warehouse.find(Category.POSTS, limit=1)[0]
    changed = post.model_copy(update={"content": {"Content": "A brand new text about sourdough starters."}})
    sample_warehouse.upsert_document(PostDocument(**changed.model_dump(exclude={"content_hash"})))
    result = featurize()
    assert (result["processed"], result["unchanged"]) == (1, 29)
    after = points()
    old, new = _doc_ids(before, post.id), _doc_ids(after, post.id)
    assert old
    assert new
    assert not (old & new)
    assert before.keys() - old == after.keys() - new  # every other point untouched
    assert after[next(iter(new))]["content"] == "A brand new text about sourdough starters."


def test_deleted_and_quarantined_documents_lose_their_points(
    sample_warehouse: Any, featurize: Any, points: Any
) -> None:
    featurize()
    before = points()
    a, b = sample_warehouse.find(Category.ARTICLES, limit=2)
    sample_warehouse.delete_document(Category.ARTICLES, a.id)
    sample_warehouse.set_quarantine(Category.ARTICLES, b.id, ["too short"])
    result = featurize()
    assert result["deleted"] == 2
    assert result["processed"] == 0
    assert result["cleaned"] == 28
    after = points()
    assert not _doc_ids(after, a.id)
    assert not _doc_ids(after, b.id)
    assert after.keys() == before.keys() - _doc_ids(before, a.id) - _doc_ids(before, b.id)
    sample_warehouse.set_quarantine(Category.ARTICLES, b.id, [])  # released: featurized again
    assert featurize()["processed"] == 1
    assert _doc_ids(points(), b.id) == _doc_ids(before, b.id)


def test_killed_run_resumes_without_duplicates_or_gaps(
    sample_warehouse: Any, featurize: Any, points: Any, settings: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from twin_core.features import feature_store

    reference = featurize()
    expected = points()
    featurize_all_again = featurize(full=True)  # same ids on a rebuild
    assert featurize_all_again["points"] == reference["points"]

    # Start over in a fresh vector store; die in the 2nd batch after its chunks were written.
    import shutil

    shutil.rmtree(settings.qdrant_path)
    monkeypatch.setattr(settings.features, "docs_per_batch", 8)
    real_write_cleaned = feature_store.write_cleaned
    calls = {"n": 0}

    def dying_write_cleaned(store: Any, docs: Any) -> None:
        calls["n"] += 1
        if calls["n"] == 2:
            raise KeyboardInterrupt("killed")
        real_write_cleaned(store, docs)

    monkeypatch.setattr(feature_store, "write_cleaned", dying_write_cleaned)
    with pytest.raises(KeyboardInterrupt):
        featurize()
    monkeypatch.setattr(feature_store, "write_cleaned", real_write_cleaned)
    partial = points()
    assert 0 < len(partial) < len(expected)
    assert partial.keys() <= expected.keys()

    resumed = featurize()
    assert resumed["processed"] == 30 - 8
    assert resumed["unchanged"] == 8
    assert points().keys() == expected.keys()
    assert resumed["points"] == len(expected)


def test_author_filter_never_returns_another_author(sample_warehouse: Any, featurize: Any, settings: Any) -> None:
    from twin_core.features.retrieval import search

    bob, _ = sample_warehouse.get_or_create_user("Bob Other")
    for i in range(3):
        sample_warehouse.upsert_document(
            PostDocument(
                link=f"https://www.linkedin.com/feed/update/urn:li:activity:b{i}/",
                platform="linkedin",
                author_id=bob.id,
                author_full_name=bob.full_name,
                content={"Content": f"Idempotent batch jobs: overwrite partitions, never append. Take {i}."},
            )
        )
    result = featurize()
    assert result["processed"] == 33
    query = "why should a batch job overwrite partitions instead of appending?"
    ada_hits = search(query, k=20, author="Ada Quillfeather", settings=settings)
    bob_hits = search(query, k=20, author="Bob Other", settings=settings)
    assert ada_hits
    assert all(h.author_full_name == "Ada Quillfeather" for h in ada_hits)
    assert len(bob_hits) == 3
    assert all(h.author_id == bob.id for h in bob_hits)
    anyone = search(query, k=5, settings=settings)
    assert [h.score for h in anyone] == sorted((h.score for h in anyone), reverse=True)
    only_posts = search(query, k=5, categories=["posts"], settings=settings)
    assert only_posts
    assert {h.category for h in only_posts} == {Category.POSTS}
    first = anyone[0]
    assert first.text
    assert first.link.startswith("https://")
    assert first.document_id
    assert first.chunk_id

    # an author-scoped run touches only that author
    bob_run = featurize(author="Bob Other", full=True)
    assert bob_run["processed"] == 3
    assert bob_run["points"] == 3


def test_mismatched_model_is_refused(sample_warehouse: Any, featurize: Any, settings: Any, embedder: Any) -> None:
    from twin_core.features.retrieval import search

    featurize()
    other = updated(settings, embedding_model_id="intfloat/e5-small-v2")
    from twin_core.features.pipeline import run_features

    with pytest.raises(ConfigError, match="embedded with sentence-transformers/all-MiniLM-L6-v2"):
        run_features(other)  # refused before any model is loaded

    class Impostor:
        model_id, dim = "someone/else", 384

    with pytest.raises(ConfigError, match="twin features run --full"):
        search("hello", settings=settings, embedder=Impostor())
