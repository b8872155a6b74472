"""`twin datasets build --author` takes the author as every `--author` does (full name in any case, slug or id):
the build runs on the stored full name. It used to accept the slug or id, then look for the documents of an
author with that *name* and fail with "nor any document in the warehouse", which was false."""

from __future__ import annotations

from typing import Any

from twin_core.datasets.versions import list_versions, load_dataset_version


def test_slug_and_id_build_the_authors_datasets(cleaned_home: Any, twin: Any, warehouse: Any) -> None:
    (user,) = warehouse.users()
    by_slug = twin("datasets", "build", "--author", "ada-quillfeather", "--max-rejected", "0")
    assert by_slug.returncode == 0, by_slug.stdout + by_slug.stderr[-2000:]
    assert by_slug.result["versions"] == {"ada-quillfeather": {"instruct": "instruct/ada-quillfeather/v0001"}}
    assert load_dataset_version(cleaned_home, "instruct/ada-quillfeather/v0001").metadata["author"] == user.full_name
    by_id = twin("datasets", "build", "--author", user.id, "--max-rejected", "0")
    assert (by_id.returncode, by_id.result["status"]) == (0, "unchanged")  # the same author, the same version
    assert list_versions(cleaned_home) == ["instruct/ada-quillfeather/v0001"]
