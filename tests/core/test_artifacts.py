import re
import threading
import uuid
from pathlib import Path

import pytest

from twin_core.errors import ConfigError, InputError
from twin_core.settings import load_settings
from twin_core.stores.artifacts import ArtifactStore, LocalBackend, open_artifact_store


@pytest.fixture(params=["local", "s3"])
def store(request, tmp_path: Path) -> ArtifactStore:
    if request.param == "local":
        return open_artifact_store(load_settings(home=tmp_path / "home"))
    # A real S3 API on 127.0.0.1 (moto's server, tests/core/conftest.py), through boto3 like AWS or MinIO.
    endpoint = request.getfixturevalue("s3_endpoint")
    import boto3

    bucket = f"twin-{uuid.uuid4().hex[:12]}"  # one server per module: a bucket per test
    boto3.client("s3", endpoint_url=endpoint).create_bucket(Bucket=bucket)
    return open_artifact_store(
        load_settings(home=tmp_path, artifacts_uri=f"s3://{bucket}/runs", s3_endpoint_url=endpoint)
    )


def test_put_get_json_and_list(store: ArtifactStore) -> None:
    store.put_json("reports/etl/run1.json", {"ok": 1})
    store.put_text("reports/etl/run2.html", "<p>hi</p>")
    assert store.get_json("reports/etl/run1.json") == {"ok": 1}
    assert store.list("reports/etl") == ["reports/etl/run1.json", "reports/etl/run2.html"]
    assert store.exists("reports/etl/run1.json")
    assert not store.exists("reports/etl/none.json")
    with pytest.raises(InputError, match="not found"):
        store.get_bytes("reports/etl/none.json")


def test_versions_are_sequential_and_idempotent_by_hash(store: ArtifactStore) -> None:
    v1 = store.put_version("datasets/instruct", {"train.jsonl": b"a\n"}, {"content_hash": "h1", "rows": 1})
    again = store.put_version("datasets/instruct", {"train.jsonl": b"a\n"}, {"content_hash": "h1", "rows": 1})
    v2 = store.put_version("datasets/instruct", {"train.jsonl": b"b\n"}, {"content_hash": "h2", "rows": 1})
    assert (v1.version, again.version, v2.version) == ("v0001", "v0001", "v0002")
    assert store.versions("datasets/instruct") == ["v0001", "v0002"]
    latest = store.get_version("datasets/instruct")
    assert latest.version == "v0002"
    assert latest.metadata["files"] == ["train.jsonl"]
    assert store.read_version_file("datasets/instruct", "v0001", "train.jsonl") == b"a\n"


def test_version_without_metadata_is_incomplete(store: ArtifactStore) -> None:
    # A killed writer leaves files but no metadata.json: that version does not exist for readers.
    store.put_bytes("models/x/v0001/weights.bin", b"partial")
    assert store.versions("models/x") == []
    assert store.put_version("models/x", {"weights.bin": b"full"}, {}).version == "v0001"


def test_path_traversal_rejected(tmp_path: Path) -> None:
    store = ArtifactStore(LocalBackend(tmp_path))
    with pytest.raises(InputError):
        store.put_bytes("../escape", b"x")


def test_bad_uri_scheme(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="TWIN_ARTIFACTS_URI"):
        open_artifact_store(load_settings(home=tmp_path, artifacts_uri="gs://bucket"))


def test_concurrent_versions_from_threads_do_not_corrupt(tmp_path: Path) -> None:
    store = ArtifactStore(LocalBackend(tmp_path))
    threads = [threading.Thread(target=store.put_json, args=(f"r/{i}.json", {"i": i})) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(store.get_json(f"r/{i}.json")["i"] for i in range(8)) == list(range(8))


def test_earlier_content_is_written_again_as_the_newest(store: ArtifactStore) -> None:
    """Readers take the newest version as current: content going back to v0001's becomes v0003, not v0001."""
    v1 = store.put_version("datasets/instruct", {"train.jsonl": b"a\n"}, {"content_hash": "h1"})
    v2 = store.put_version("datasets/instruct", {"train.jsonl": b"b\n"}, {"content_hash": "h2"})
    same = store.put_version("datasets/instruct", {"train.jsonl": b"b\n"}, {"content_hash": "h2"})
    back = store.put_version("datasets/instruct", {"train.jsonl": b"a\n"}, {"content_hash": "h1"})
    assert (v1.version, v2.version, same.version, back.version) == ("v0001", "v0002", "v0002", "v0003")
    assert store.versions("datasets/instruct") == ["v0001", "v0002", "v0003"]


def test_a_failed_upload_removes_its_files_and_raises_the_original_error(
    store: ArtifactStore, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    missing = tmp_path / "gone.bin"
    files = {"a.bin": b"written first", "b.bin": missing}  # written in name order: a.bin, then b.bin fails
    with pytest.raises(InputError, match=f"^{re.escape(str(missing))}: not a file$"):
        store.put_version("models/x", files, {"content_hash": "h1"})
    assert store.list("models/x") == []
    assert store.versions("models/x") == []
    if store.local_path("models/x") is not None:
        assert not store.local_path("models/x/v0001").exists()

    def broken_delete(key: str) -> None:
        raise OSError("cleanup fails too")

    monkeypatch.setattr(store._b, "delete", broken_delete)
    with pytest.raises(InputError, match="not a file"):  # the cleanup's error never masks the upload's
        store.put_version("models/x", files, {"content_hash": "h1"})
    monkeypatch.undo()
    ok = store.put_version("models/x", {"a.bin": b"whole"}, {"content_hash": "h1"})
    assert ok.version == "v0003"  # a failed writer's number is not reused
    assert store.versions("models/x") == ["v0003"]
    assert store.read_version_file("models/x", "v0003", "a.bin") == b"whole"
