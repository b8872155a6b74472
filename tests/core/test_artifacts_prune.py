"""Deleting versions (``delete_version``, ``prune_versions``) on both backends: metadata first, so a killed
delete leaves no half version; the leftovers go at the next prune; numbers are never given twice."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest

from twin_core.errors import InputError
from twin_core.settings import load_settings
from twin_core.stores.artifacts import ArtifactStore, open_artifact_store

NAME = "training/run1/checkpoints"


class Killed(BaseException):
    """The process going away mid-delete (SIGKILL runs no cleanup: nothing after it happens)."""


@pytest.fixture(params=["local", "s3"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> ArtifactStore:
    if request.param == "local":
        return open_artifact_store(load_settings(home=tmp_path / "home"))
    endpoint = request.getfixturevalue("s3_endpoint")  # moto's S3 server (tests/core/conftest.py)
    import boto3

    bucket = f"twin-{uuid.uuid4().hex[:12]}"
    boto3.client("s3", endpoint_url=endpoint).create_bucket(Bucket=bucket)
    return open_artifact_store(
        load_settings(home=tmp_path, artifacts_uri=f"s3://{bucket}/runs", s3_endpoint_url=endpoint)
    )


def _put(store: ArtifactStore, step: int) -> str:
    files = {"adapter.bin": f"adapter {step}".encode(), "state/optimizer.pt": f"optimizer {step}".encode()}
    return store.put_version(NAME, files, {"step": step}).version


def _keys(store: ArtifactStore, version: str) -> list[str]:
    return [f"{NAME}/{version}/adapter.bin", f"{NAME}/{version}/metadata.json", f"{NAME}/{version}/state/optimizer.pt"]


def _kill_after_metadata(store: ArtifactStore, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Make the backend's delete remove metadata files only, and die at the first other file."""
    deleted: list[str] = []
    delete = store._b.delete

    def dies_at_a_file(key: str) -> None:
        if not key.endswith("/metadata.json"):
            raise Killed(key)
        delete(key)
        deleted.append(key)

    monkeypatch.setattr(store._b, "delete", dies_at_a_file)
    return deleted


def test_prune_keeps_the_newest_versions_and_deletes_metadata_first(
    store: ArtifactStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert [_put(store, step) for step in (2, 4, 6, 8)] == ["v0001", "v0002", "v0003", "v0004"]
    order: list[str] = []
    delete = store._b.delete
    monkeypatch.setattr(store._b, "delete", lambda key: (order.append(key), delete(key))[1])

    assert store.prune_versions(NAME, 2) == ["v0001", "v0002"]
    assert order == [
        f"{NAME}/v0001/metadata.json",
        f"{NAME}/v0001/adapter.bin",
        f"{NAME}/v0001/state/optimizer.pt",
        f"{NAME}/v0002/metadata.json",
        f"{NAME}/v0002/adapter.bin",
        f"{NAME}/v0002/state/optimizer.pt",
    ]
    assert store.versions(NAME) == ["v0003", "v0004"]
    assert store.list(NAME) == _keys(store, "v0003") + _keys(store, "v0004")
    assert store.get_version(NAME).metadata["step"] == 8
    folder = store.version_local_path(NAME, "v0001")
    if folder is not None:  # the local store: the folders are gone from the disk too
        assert sorted(p.name for p in folder.parent.iterdir()) == ["v0003", "v0004"]
    assert store.prune_versions(NAME, 2) == []  # nothing more to do
    assert store.prune_versions(NAME, 5) == []
    assert store.versions(NAME) == ["v0003", "v0004"]


def test_a_killed_delete_leaves_no_version_and_the_next_prune_removes_its_files(
    store: ArtifactStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    for step in (2, 4, 6):
        _put(store, step)
    deleted = _kill_after_metadata(store, monkeypatch)
    with pytest.raises(Killed):
        store.prune_versions(NAME, 2)
    assert deleted == [f"{NAME}/v0001/metadata.json"]
    monkeypatch.undo()  # a new process
    assert store.versions(NAME) == ["v0002", "v0003"]  # the half-deleted version is no version
    assert [v.version for v in store.iter_versions(NAME)] == ["v0002", "v0003"]
    assert store.list(f"{NAME}/v0001") == [f"{NAME}/v0001/adapter.bin", f"{NAME}/v0001/state/optimizer.pt"]
    with pytest.raises(InputError, match="not found"):
        store.get_version(NAME, "v0001")

    assert _put(store, 8) == "v0004"
    assert store.prune_versions(NAME, 2) == ["v0001", "v0002"]  # v0001's leftover files too
    assert store.list(NAME) == _keys(store, "v0003") + _keys(store, "v0004")


def test_latest_is_never_a_half_deleted_version(store: ArtifactStore, monkeypatch: pytest.MonkeyPatch) -> None:
    for step in (2, 4, 6):
        _put(store, step)
    _kill_after_metadata(store, monkeypatch)
    with pytest.raises(Killed):
        store.delete_version(NAME, "v0003")
    monkeypatch.undo()
    assert store.versions(NAME) == ["v0001", "v0002"]
    latest = store.get_version(NAME)
    assert (latest.version, latest.metadata["step"]) == ("v0002", 4)
    assert store.prune_versions(NAME, 2) == []  # v0003's leftover is newer than every kept version: left
    assert store.list(f"{NAME}/v0003") == [f"{NAME}/v0003/adapter.bin", f"{NAME}/v0003/state/optimizer.pt"]
    store.delete_version(NAME, "v0003")  # deleting again finishes it
    assert store.list(f"{NAME}/v0003") == []


def test_deleted_numbers_are_never_given_again(store: ArtifactStore) -> None:
    assert [_put(store, step) for step in (2, 4)] == ["v0001", "v0002"]
    store.delete_version(NAME, "v0002")
    store.delete_version(NAME, "v0001")
    store.delete_version(NAME, "v0001")  # a missing version: nothing to do
    assert store.versions(NAME) == []
    assert store.list(NAME) == []
    assert _put(store, 2) == "v0003"  # the claims stay: v0001 and v0002 are never reused
    assert store.versions(NAME) == ["v0003"]
    assert store.get_version(NAME).metadata["step"] == 2


def test_prune_leaves_newer_unfinished_versions_and_refuses_keep_0(store: ArtifactStore) -> None:
    for step in (2, 4, 6):
        _put(store, step)
    store.put_bytes(f"{NAME}/v0004/adapter.bin", b"being written")  # a writer's version in progress
    assert store.prune_versions(NAME, 1) == ["v0001", "v0002"]
    assert store.list(NAME) == [*_keys(store, "v0003"), f"{NAME}/v0004/adapter.bin"]
    with pytest.raises(InputError, match=r"^training/run1/checkpoints: keep at least 1 version \(got 0\)$"):
        store.prune_versions(NAME, 0)
    with pytest.raises(InputError, match=r"not a version: 'latest'"):
        store.delete_version(NAME, "latest")
    assert store.prune_versions("training/none/checkpoints", 2) == []


def test_local_prune_removes_a_killed_copy_s_temporary_file(tmp_path: Path) -> None:
    store = open_artifact_store(load_settings(home=tmp_path / "home"))
    _put(store, 2)
    assert store.put_bytes(f".claims/{NAME}/v0002.claim", b"{}")  # a writer took v0002 and was killed
    part = store.local_path(f"{NAME}/v0002/adapter.bin.0123456789ab.part")  # midway through its first copy
    part.parent.mkdir(parents=True)
    part.write_bytes(b"half a file")
    assert store.list(NAME) == _keys(store, "v0001")  # temporary files are never listed
    assert [_put(store, step) for step in (4, 6)] == ["v0003", "v0004"]
    assert store.prune_versions(NAME, 2) == ["v0001"]
    assert sorted(p.name for p in part.parent.parent.iterdir()) == ["v0003", "v0004"]


def test_delete_folder_deletes_the_keys_under_it_and_nothing_else(store: ArtifactStore) -> None:
    for key in ("evaluations/.resume/h1/candidate.json", "evaluations/.resume/h1/baseline.json",
                "evaluations/.resume/h12/candidate.json"):  # fmt: skip
        store.put_json(key, {"key": key})
    assert store.delete_folder("evaluations/.resume/h1") == 2
    assert store.list("evaluations/.resume") == ["evaluations/.resume/h12/candidate.json"]
    assert store.delete_folder("evaluations/.resume/h1") == 0


def test_prune_keeps_a_spare_version_besides_the_newest(store: ArtifactStore) -> None:
    """Early stopping's best checkpoint is kept however old it grows; the others below the newest go."""
    assert [_put(store, step) for step in (2, 4, 6, 8)] == ["v0001", "v0002", "v0003", "v0004"]
    assert store.prune_versions(NAME, 1, spare=["v0002"]) == ["v0001", "v0003"]
    assert store.versions(NAME) == ["v0002", "v0004"]
    assert store.read_version_file(NAME, "v0002", "adapter.bin") == b"adapter 4"
    _put(store, 10)
    assert store.prune_versions(NAME, 1) == ["v0002", "v0004"]  # no longer the best: pruned as any
    assert store.versions(NAME) == ["v0005"]
