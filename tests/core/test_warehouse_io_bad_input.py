"""`twin warehouse import` on bad input: every bad row is rejected with a clear reason, the rest is imported,
nothing is duplicated and a re-import changes nothing."""

from __future__ import annotations

import json
from pathlib import Path

from twin_core.domain import Category
from twin_core.stores import warehouse_io
from twin_core.stores.warehouse_io import import_paths

AUTHOR = "Ada Quillfeather"


def _doc(link: str, text: str, platform: str = "blog") -> dict:
    return {"link": link, "author_full_name": AUTHOR, "platform": platform, "content": {"Content": text}}


def _write(folder: Path, name: str, rows: list) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / name).write_text(json.dumps(rows))
    return folder


def _contents(warehouse) -> dict[str, list[tuple[str, str]]]:
    return {
        c.value: sorted((d.link, d.text) for d in warehouse.iter_documents(c, include_quarantined=True))
        for c in Category
    }


def test_a_link_given_twice_with_other_content_keeps_the_first_and_says_so(warehouse, tmp_path: Path) -> None:
    rows = [_doc("https://ada.dev/a", "one"), _doc("https://ada.dev/a", "two"), _doc("https://ada.dev/a", "one")]
    folder = _write(tmp_path / "b", "ArticleDocument.json", rows)
    report = import_paths(warehouse, [folder])
    assert report.counts["articles"] == {"created": 1, "updated": 0, "unchanged": 1}  # the identical repeat
    first = "ArticleDocument.json[0]"
    assert [(r["index"], r["reason"]) for r in report.rejected] == [
        ("1", f"https://ada.dev/a: same link as {first}, with other content ({first} was kept)")
    ]
    assert _contents(warehouse)["articles"] == [("https://ada.dev/a", "one")]
    again = import_paths(warehouse, [folder])  # a re-import changes nothing, and says so
    assert again.counts["articles"] == {"created": 0, "updated": 0, "unchanged": 2}
    assert _contents(warehouse)["articles"] == [("https://ada.dev/a", "one")]


def test_one_link_in_two_categories_is_one_document(warehouse, tmp_path: Path) -> None:
    folder = _write(tmp_path / "b", "ArticleDocument.json", [_doc("https://ada.dev/x", "article")])
    _write(folder, "PostDocument.json", [_doc("https://ada.dev/x", "post", "linkedin")])
    report = import_paths(warehouse, [folder])
    assert [r["file"] for r in report.rejected] == ["PostDocument.json"]
    assert "same link as ArticleDocument.json[0], in another category" in report.rejected[0]["reason"]
    # and a later import of that link as a post, while it is stored as an article
    later = _write(tmp_path / "later", "PostDocument.json", [_doc("https://ada.dev/x", "post", "linkedin")])
    report = import_paths(warehouse, [later])
    assert (
        report.rejected[0]["reason"]
        == "https://ada.dev/x: already stored as one of the articles (one category per link)"
    )
    assert _contents(warehouse) == {"articles": [("https://ada.dev/x", "article")], "posts": [], "repositories": []}


def test_two_backups_sharing_a_link_the_first_given_wins(warehouse, tmp_path: Path) -> None:
    """Before, the files were ordered through a set: which of the two backups won depended on the hash seed."""
    names = [f"backup{i}" for i in range(8)]  # eight folders: a set order matching the given one is 1 in 8!
    folders = [_write(tmp_path / n, "ArticleDocument.json", [_doc("https://ada.dev/a", n)]) for n in names]
    report = import_paths(warehouse, folders)
    assert _contents(warehouse)["articles"] == [("https://ada.dev/a", "backup0")]
    assert len(report.rejected) == 7


def test_the_same_file_named_twice_is_read_once(warehouse, tmp_path: Path) -> None:
    folder = _write(tmp_path / "b", "ArticleDocument.json", [_doc("https://ada.dev/a", "one")])
    report = import_paths(warehouse, [folder, folder / "ArticleDocument.json", tmp_path / "b" / ".." / "b"])
    assert len(report.files) == 1
    assert report.counts["articles"]["created"] == 1 and not report.rejected


def test_content_over_the_document_limit_is_rejected(warehouse, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(warehouse_io, "MAX_CONTENT_BYTES", 1_000)
    rows = [_doc("https://ada.dev/big", "x" * 2_000), _doc("https://ada.dev/ok", "fine")]
    report = import_paths(warehouse, [_write(tmp_path, "ArticleDocument.json", rows)])
    assert [(r["index"], r["reason"]) for r in report.rejected] == [
        ("0", "content is 2,015 bytes, over the 1,000-byte limit of a document")
    ]
    assert _contents(warehouse)["articles"] == [("https://ada.dev/ok", "fine")]


def test_the_document_limit_is_below_mongodbs_16_mb() -> None:
    assert warehouse_io.MAX_CONTENT_BYTES < 16 * 1024 * 1024


def test_user_names_must_be_text(warehouse, tmp_path: Path) -> None:
    rows = [{"first_name": 5, "last_name": None}, {"first_name": "Ada", "last_name": ["Q"]}, {"first_name": "Ada"}]
    report = import_paths(warehouse, [_write(tmp_path, "UserDocument.json", rows)])
    assert [r["reason"] for r in report.rejected] == ["first_name/last_name must be text"] * 2
    assert [u.full_name for u in warehouse.users()] == ["Ada"]


def test_a_byte_order_mark_is_read(warehouse, tmp_path: Path) -> None:
    (tmp_path / "ArticleDocument.json").write_bytes(
        b"\xef\xbb\xbf" + json.dumps([_doc("https://ada.dev/a", "t")]).encode()
    )
    report = import_paths(warehouse, [tmp_path])
    assert report.counts["articles"]["created"] == 1


def test_a_model_level_reason_has_no_empty_location(warehouse, tmp_path: Path) -> None:
    report = import_paths(warehouse, [_write(tmp_path, "ArticleDocument.json", [_doc("   ", "t")])])
    assert report.rejected[0]["reason"] == "link is empty"
