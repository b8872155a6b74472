"""Artifact store: streamed files and folders, and version numbers under concurrent writers."""

from __future__ import annotations

import multiprocessing
import threading
from pathlib import Path
from typing import Any

import pytest

from twin_core.errors import InputError
from twin_core.settings import load_settings
from twin_core.stores.artifacts import ArtifactStore, LocalBackend, S3Backend, open_artifact_store


def _s3_store(endpoint: str, bucket: str, *, conditional_writes: bool | None = None) -> ArtifactStore:
    import boto3

    boto3.client("s3", endpoint_url=endpoint).create_bucket(Bucket=bucket)
    return ArtifactStore(S3Backend(bucket, "runs", endpoint, conditional_writes=conditional_writes))


@pytest.fixture(params=["local", "s3", "s3-no-conditional-writes"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> ArtifactStore:
    if request.param == "local":
        return open_artifact_store(load_settings(home=tmp_path / "home"))
    endpoint = request.getfixturevalue("s3_endpoint")
    bucket = f"twin-{tmp_path.name.lower().replace('_', '-')[-40:]}"
    return _s3_store(endpoint, bucket, conditional_writes=None if request.param == "s3" else False)


def _folder(root: Path) -> Path:
    (root / "sub").mkdir(parents=True)
    (root / "config.json").write_text('{"a": 1}')
    (root / "sub" / "weights.bin").write_bytes(bytes(range(256)) * 4096)  # 1 MiB
    return root


def test_folder_round_trip_by_streaming(store: ArtifactStore, tmp_path: Path) -> None:
    src = _folder(tmp_path / "model")
    av = store.put_version_dir("models/ada", src, {"content_hash": "h1"})
    assert av.version == "v0001"
    assert av.metadata["files"] == ["config.json", "sub/weights.bin"]
    assert store.put_version_dir("models/ada", src, {"content_hash": "h1"}).version == "v0001"  # idempotent

    got = store.download_version("models/ada", "latest", tmp_path / "dl")
    assert got == tmp_path / "dl" / "v0001"
    assert (got / "sub" / "weights.bin").read_bytes() == (src / "sub" / "weights.bin").read_bytes()
    assert (got / "config.json").read_text() == '{"a": 1}'
    assert sorted(p.name for p in (tmp_path / "dl").iterdir()) == ["v0001"]  # no staging left behind

    with store.open_version_file("models/ada", "v0001", "sub/weights.bin") as fh:
        assert fh.read(4) == bytes([0, 1, 2, 3])
    local = store.version_local_path("models/ada", "v0001")
    if isinstance(store._b, LocalBackend):
        assert (local / "sub" / "weights.bin").is_file()
    else:
        assert local is None


def test_put_and_get_file(store: ArtifactStore, tmp_path: Path) -> None:
    src = tmp_path / "big.bin"
    src.write_bytes(b"x" * 3_000_000)
    store.put_file("blobs/big.bin", src)
    dest = store.get_file("blobs/big.bin", tmp_path / "out" / "big.bin")
    assert dest.read_bytes() == src.read_bytes()
    assert store.list("blobs") == ["blobs/big.bin"]
    with pytest.raises(InputError, match="not found"):
        store.get_file("blobs/none.bin", tmp_path / "out" / "none.bin")
    assert not (tmp_path / "out" / "none.bin").exists()
    with pytest.raises(InputError, match="not a file"):
        store.put_file("blobs/x", tmp_path / "missing")


def test_bad_version_inputs_write_nothing(store: ArtifactStore, tmp_path: Path) -> None:
    with pytest.raises(InputError, match="metadata.json"):
        store.put_version("m", {"metadata.json": b"{}"}, {})
    with pytest.raises(InputError, match="not a folder"):
        store.put_version_dir("m", tmp_path / "missing", {})
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError, match="no files"):
        store.put_version_dir("m", tmp_path / "empty", {})
    assert store.list("m") == []


def _race(store: ArtifactStore, writers: int, each: int) -> list[str]:
    barrier = threading.Barrier(writers)
    got: list[str] = []
    errors: list[BaseException] = []

    def write(w: int) -> None:
        try:
            barrier.wait()
            for i in range(each):
                av = store.put_version("datasets/instruct/ada", {"train.jsonl": f"{w}-{i}\n".encode()}, {"writer": w})
                got.append(av.version)
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=write, args=(w,)) for w in range(writers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    return got


def test_concurrent_writers_never_share_a_version(store: ArtifactStore) -> None:
    got = _race(store, writers=4, each=3)
    assert len(got) == 12
    assert len(set(got)) == 12  # twelve writes, twelve distinct versions
    assert store.versions("datasets/instruct/ada") == sorted(set(got), key=lambda v: int(v[1:]))
    for av in store.iter_versions("datasets/instruct/ada"):  # each version holds its own writer's file
        body = store.read_version_file(av.name, av.version, "train.jsonl").decode()
        assert body.startswith(f"{av.metadata['writer']}-")


def test_a_killed_writers_claim_is_skipped(store: ArtifactStore) -> None:
    # a writer claimed v0001 and died before its metadata: readers see nothing, the next writer takes v0002
    assert store._b.create_exclusive(".claims/m/v0001.claim", b"{}")
    store.put_bytes("m/v0001/part.bin", b"half")
    assert store.versions("m") == []
    assert store.put_version("m", {"a": b"1"}, {}).version == "v0002"


def _process_writer(root: str, n: int, out: Any) -> None:
    store = ArtifactStore(LocalBackend(Path(root)))
    out.put([store.put_version("models/ada", {"w": b"x"}, {}).version for _ in range(n)])


def test_two_processes_on_the_local_store(tmp_path: Path) -> None:
    ctx = multiprocessing.get_context("spawn")
    out = ctx.Queue()
    procs = [ctx.Process(target=_process_writer, args=(str(tmp_path), 5, out)) for _ in range(2)]
    for p in procs:
        p.start()
    got = out.get(timeout=120) + out.get(timeout=120)
    for p in procs:
        p.join(timeout=60)
    assert sorted(got) == [f"v{i:04d}" for i in range(1, 11)]
