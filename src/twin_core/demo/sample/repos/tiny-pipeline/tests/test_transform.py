from tiny_pipeline.transform import clean_text, deduplicate, record_id, transform


def test_clean_text_collapses_whitespace():
    assert clean_text("  hello \n\t world  ") == "hello world"


def test_clean_text_normalises_bold_letters():
    assert clean_text("\U0001d5db\U0001d5f2\U0001d5f9\U0001d5f9\U0001d5fc") == "Hello"


def test_clean_text_is_idempotent():
    once = clean_text(" a  b\u00a0c ")
    assert once == "a b c"
    assert clean_text(once) == once


def test_record_id_is_deterministic():
    assert record_id("blog", "post-1") == record_id("blog", "post-1")
    assert record_id("blog", "post-1") != record_id("blog", "post-2")
    assert len(record_id("blog", "post-1")) == 32


def test_transform_then_deduplicate_drops_repeats():
    raw = [
        {"key": "a", "text": "First   post"},
        {"key": "a", "text": "First post, edited"},
        {"key": "b", "text": "Second post"},
        {"key": "c", "text": "   "},
    ]
    records = deduplicate(transform(raw, source="blog"))
    assert [record["text"] for record in records] == ["First post", "Second post"]
