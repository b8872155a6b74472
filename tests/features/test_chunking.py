"""Chunking: every chunk fits the model (its own tokenizer, special tokens counted) and the text is covered."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from twin_core.domain.documents import Category, document_class
from twin_core.domain.features import CleanedDocument
from twin_core.features.chunking import chunk_document
from twin_core.features.cleaning import clean_document

pytestmark = pytest.mark.slow
FILES = {"ArticleDocument.json": "articles", "PostDocument.json": "posts", "RepositoryDocument.json": "repositories"}


def _sample_cleaned(sample_dir: Path) -> list[CleanedDocument]:
    docs = []
    for name, cat in FILES.items():
        for row in json.loads((sample_dir / name).read_text()):
            row = {k: v for k, v in row.items() if k != "_id"}
            docs.append(clean_document(document_class(cat)(**row)))
    return docs


def _doc(text: str, category: Category = Category.ARTICLES) -> CleanedDocument:
    return CleanedDocument(
        id="d1",
        category=category,
        platform="blog",
        link="https://x/1",
        author_id="a",
        author_full_name="A",
        content=text,
        raw_content_hash="h",
    )


def _assert_fit_and_cover(doc: CleanedDocument, chunks: list, embedder: Any, limit: int) -> None:
    counts = embedder.count_tokens([c.content for c in chunks])  # special tokens included
    assert max(counts) <= min(limit, embedder.max_tokens)
    assert [c.token_count for c in chunks] == counts
    covered = [False] * len(doc.content)
    for c in chunks:
        start, end = c.metadata["start"], c.metadata["end"]
        assert doc.content[start:end] == c.content
        covered[start:end] = [True] * (end - start)
    missing = [ch for ch, ok in zip(doc.content, covered, strict=True) if not ok and not ch.isspace()]
    assert missing == [], "every non-space character lands in a chunk"


def test_sample_chunks_fit_and_cover_everything(embedder: Any, sample_dir: Path) -> None:
    for doc in _sample_cleaned(sample_dir):
        chunks = chunk_document(doc, embedder, 256, 32)
        _assert_fit_and_cover(doc, chunks, embedder, 256)
        assert [c.chunk_index for c in chunks] == list(range(len(chunks)))


def test_small_budget_still_fits(embedder: Any, sample_dir: Path) -> None:
    for doc in _sample_cleaned(sample_dir)[:6]:
        _assert_fit_and_cover(doc, chunk_document(doc, embedder, 48, 8), embedder, 48)


def test_huge_single_line_is_split_not_truncated(embedder: Any) -> None:
    words = " ".join(f"word{i} embedding{i % 7}" for i in range(3000))  # one line, ~15k tokens
    doc = _doc(words)
    chunks = chunk_document(doc, embedder, 256, 32)
    assert len(chunks) > 40
    _assert_fit_and_cover(doc, chunks, embedder, 256)


def test_one_giant_word_and_repo_line(embedder: Any) -> None:
    blob = "A" * 5000 + " tail"
    doc = _doc("# data.txt\n" + blob + "\n    indented = 1", Category.REPOSITORIES)
    chunks = chunk_document(doc, embedder, 256, 0)
    _assert_fit_and_cover(doc, chunks, embedder, 256)


def test_overlap_is_configurable(embedder: Any, sample_dir: Path) -> None:
    doc = next(d for d in _sample_cleaned(sample_dir) if d.category == Category.ARTICLES)
    with_overlap = chunk_document(doc, embedder, 128, 40)
    without = chunk_document(doc, embedder, 128, 0)
    shared = [a.metadata["end"] > b.metadata["start"] for a, b in zip(with_overlap, with_overlap[1:], strict=False)]
    assert any(shared)
    assert all(a.metadata["end"] <= b.metadata["start"] for a, b in zip(without, without[1:], strict=False))


def test_short_post_stays_whole_and_ids_are_deterministic(embedder: Any) -> None:
    doc = _doc("A short post.\n\nTwo paragraphs.", Category.POSTS)
    first, again = chunk_document(doc, embedder, 256, 32), chunk_document(doc, embedder, 256, 32)
    assert len(first) == 1
    assert first[0].content == doc.content
    assert [c.id for c in first] == [c.id for c in again]


def test_code_is_chunked_per_file(embedder: Any, sample_dir: Path) -> None:
    repo = next(d for d in _sample_cleaned(sample_dir) if d.category == Category.REPOSITORIES)
    chunks = chunk_document(repo, embedder, 128, 16)
    files = {path: (s, e) for path, s, e in repo.metadata["files"]}
    for c in chunks:
        s, e = files[c.metadata["file"]]
        assert s <= c.metadata["start"]
        assert c.metadata["end"] <= e
