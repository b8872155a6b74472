"""`twin datasets build` for an author with nothing to build from says which step gives them something: the
warehouse tells an author with no document at all (crawl or import first) from one not featurized yet. It
used to say "run `twin features run`" to both, which does nothing for the first."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from twin_core.datasets.versions import list_versions

NOTHING = "has no cleaned documents in the feature store"


def test_an_author_without_documents_is_told_to_crawl_or_import_first(
    cleaned_home: Any, twin: Any, warehouse: Any
) -> None:
    warehouse.get_or_create_user("Nobody Writer")  # a user, not one document
    run = twin("datasets", "build", "--author", "Nobody Writer", "--max-rejected", "0")
    assert (run.returncode, run.result["kind"]) == (3, "input")
    assert run.result["error"] == (
        f"author 'Nobody Writer' {NOTHING}, nor any document in the warehouse: crawl (`twin etl crawl`) or import "
        "(`twin warehouse import`) their writing, then run `twin features run`"
    )
    assert list_versions(cleaned_home) == []


def test_an_author_not_featurized_yet_is_told_to_run_features(
    cleaned_home: Any, twin: Any, warehouse: Any, sample_dir: Path
) -> None:
    from twin_core.stores.warehouse_io import import_paths

    import_paths(warehouse, [sample_dir / "second_author"])  # in the warehouse, not cleaned into the feature store
    run = twin("datasets", "build", "--max-rejected", "0")  # every author: this one is skipped with the reason
    assert (run.returncode, run.result["status"]) == (3, "partial")
    assert run.result["skipped"] == [
        {
            "author": "Oskar Brennmoor",
            "error": f"author 'Oskar Brennmoor' {NOTHING}; its 26 documents in the warehouse are not featurized "
            "yet: run `twin features run`",
        }
    ]
    assert list_versions(cleaned_home) == ["instruct/ada-quillfeather/v0001"]
