import pytest
from pydantic import ValidationError

from twin_core.domain import ArticleDocument, Category, RepositoryDocument, UserDocument, content_hash
from twin_core.domain.ids import chunk_id, document_id, user_id
from twin_core.errors import InputError


def _article(**kw):
    base = {
        "link": "https://example.com/a",
        "platform": "blog",
        "author_id": user_id("Ada Quillfeather"),
        "author_full_name": "Ada Quillfeather",
        "content": {"Title": "T", "Content": "Body"},
    }
    return ArticleDocument(**{**base, **kw})


def test_ids_are_deterministic() -> None:
    assert user_id("Ada  Quillfeather") == user_id("ada quillfeather")
    assert user_id("Ada Quillfeather") != user_id("Ada Quill")
    assert document_id("https://x/1") == document_id("https://x/1") != document_id("https://x/2")
    assert chunk_id("d", 0, "h") != chunk_id("d", 1, "h")


def test_content_hash_ignores_key_order_but_not_values() -> None:
    assert content_hash({"a": 1, "b": "x"}) == content_hash({"b": "x", "a": 1})
    assert content_hash({"a": 1}) != content_hash({"a": 2})


def test_document_derives_id_and_hash() -> None:
    doc = _article()
    assert doc.id == document_id("https://example.com/a")
    assert doc.content_hash == content_hash({"Title": "T", "Content": "Body"})
    assert doc.category is Category.ARTICLES
    assert "Body" in doc.text


def test_document_round_trips_through_mongo_row() -> None:
    doc = _article()
    row = doc.to_mongo()
    assert row["_id"] == doc.id
    assert row["category"] == "articles"
    assert ArticleDocument.from_mongo(row) == doc


def test_repository_text_keeps_code_intact() -> None:
    code = "def f():\n    return 1\n\n\tx = 2\n"
    repo = RepositoryDocument(
        link="https://g/r",
        platform="github",
        author_id="a",
        author_full_name="A B",
        content={"src/f.py": code},
        name="r",
    )
    assert code in repo.text


def test_empty_link_rejected() -> None:
    with pytest.raises(ValidationError):
        _article(link="  ")


def test_unknown_category_is_a_clear_input_error() -> None:
    assert Category.parse("Article") is Category.ARTICLES
    with pytest.raises(InputError, match="unknown category 'video'"):
        Category.parse("video")


def test_user_from_full_name() -> None:
    u = UserDocument.from_full_name("  Ada   Quillfeather ")
    assert (u.first_name, u.last_name, u.full_name) == ("Ada", "Quillfeather", "Ada Quillfeather")
    with pytest.raises(InputError):
        UserDocument.from_full_name("   ")
