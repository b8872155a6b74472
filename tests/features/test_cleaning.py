"""Cleaning: faithful normalization (no model needed)."""

from __future__ import annotations

import pytest

from twin_core.domain.documents import ArticleDocument, PostDocument, RepositoryDocument
from twin_core.features.cleaning import EmptyAfterCleaning, clean_document
from twin_core.features.text_cleaning import clean_code, clean_prose, scrub_pii

AUTHOR = {"author_id": "a1", "author_full_name": "Ada Quillfeather"}


def test_math_bold_becomes_plain_letters() -> None:
    assert clean_prose("𝗜𝗱𝗲𝗺𝗽𝗼𝘁𝗲𝗻𝗰𝘆 𝗶𝘀 𝗮 𝗳𝗲𝗮𝘁𝘂𝗿𝗲") == "Idempotency is a feature"
    assert clean_prose("𝑖𝑡𝑎𝑙𝑖𝑐 and ｆｕｌｌｗｉｄｔｈ") == "italic and fullwidth"


def test_paragraphs_lists_and_code_blocks_are_kept() -> None:
    text = (
        "First  paragraph,\tsame line.\n\n\n\nSecond paragraph.\n\n"
        "1. one\n2. two\n   - nested\n\n"
        "```python\ndef f(x):\n    if x:\n        return  x\n```\n\nEnd."
    )
    out = clean_prose(text)
    assert out.split("\n\n")[0] == "First paragraph, same line."
    assert "\n\nSecond paragraph.\n\n1. one\n2. two\n   - nested\n\n" in out
    assert "```python\ndef f(x):\n    if x:\n        return  x\n```" in out  # code verbatim
    assert "\n\n\n" not in out


def test_boilerplate_urls_and_emoji_noise_are_dropped() -> None:
    text = (
        "Share this post\nReal sentence 🚀🚀 here.\nhttps://example.com/x?utm=1\n👉👉👉\n"
        "5 min read\nSubscribe\nA link inside https://example.com stays."
    )
    out = clean_prose(text)
    assert out == "Real sentence here.\nA link inside https://example.com stays."


def test_pii_policy() -> None:
    text = "Mail ada@example.com or call +44 20 7946 0958. Year 2024, id 12345."
    assert scrub_pii(text, "redact") == "Mail [EMAIL] or call [PHONE]. Year 2024, id 12345."
    assert scrub_pii(text, "keep") == text


def test_code_keeps_indentation_and_tabs() -> None:
    code = "class A:\r\n    def f(self):\r\n\treturn 1   \r\n"
    assert clean_code(code) == "class A:\n    def f(self):\n\treturn 1"


def test_repository_skips_binary_files_and_records_sections() -> None:
    doc = RepositoryDocument(
        link="https://github.com/a/r",
        platform="github",
        name="r",
        content={"a.py": "def f():\n    return 1\n", "logo.png": "\x89PNG\x00\x00", "blob.bin": "x" * 10},
        **AUTHOR,
    )
    cleaned = clean_document(doc)
    assert cleaned.content == "# a.py\ndef f():\n    return 1"
    assert cleaned.metadata["skipped_files"] == {"blob.bin": "binary", "logo.png": "binary"}
    path, start, end = cleaned.metadata["files"][0]
    assert cleaned.content[start:end].startswith("# a.py")


def test_binary_looking_text_is_skipped() -> None:
    junk = "".join(chr(c) for c in range(1, 31)) * 50
    doc = RepositoryDocument(link="https://github.com/a/b", platform="github", content={"x.dat": junk}, **AUTHOR)
    with pytest.raises(EmptyAfterCleaning, match="no text file left"):
        clean_document(doc)


@pytest.mark.parametrize(
    "content",
    [{}, {"Content": "   "}, {"Content": "🚀🔥💯\n👉 https://t.co/abc\nhttps://example.com"}],
    ids=["empty", "blank", "emoji-and-urls"],
)
def test_nothing_left_is_a_clear_error(content: dict) -> None:
    doc = PostDocument(link="https://www.linkedin.com/p/1", platform="linkedin", content=content, **AUTHOR)
    with pytest.raises(EmptyAfterCleaning, match="no text left after cleaning"):
        clean_document(doc)


def test_article_fields_in_order_without_metadata() -> None:
    doc = ArticleDocument(
        link="https://medium.com/@a/x",
        platform="medium",
        content={"language": "en", "Content": "Body.", "Title": "T", "Subtitle": "S"},
        **AUTHOR,
    )
    assert clean_document(doc).content == "T\n\nS\n\nBody."
