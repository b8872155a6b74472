"""`twin warehouse authors`: the list twin_features maps over (one featurize task per author)."""

from pathlib import Path


def test_authors_lists_full_names_sorted(twin, twin_home: Path, sample_dir: Path) -> None:
    empty = twin("warehouse", "authors")
    assert empty.returncode == 0, empty.stderr
    assert empty.result["authors"] == []
    assert empty.result["count"] == 0
    assert twin("warehouse", "import", str(sample_dir)).returncode == 0
    listed = twin("warehouse", "authors")
    assert listed.result["step"] == "warehouse.authors"
    assert listed.result["status"] == "ok"
    assert listed.result["authors"] == ["Ada Quillfeather"]
    assert listed.result["count"] == 1
