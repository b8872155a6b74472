"""Artifact store: datasets, models, reports. S3 (``s3://bucket/prefix``) or a local directory.

Versioned artifacts live at ``<name>/v<NNNN>/`` with a ``metadata.json`` beside their files, so a
reader can always ask for ``latest(name)`` or a pinned version. Files are streamed (boto3's managed,
multipart transfer on S3; file copies locally), never read whole into memory, so model weights fit.
The backends are in ``artifact_backends.py``.

API (``store = open_artifact_store(settings)``):

- plain objects: ``put_bytes/get_bytes``, ``put_json/get_json``, ``put_text``, ``exists``, ``list``,
  ``uri``; files by streaming: ``put_file(key, path)``, ``get_file(key, dest)``,
  ``open_file(key)`` (a binary file object, use as a context manager), ``local_path(key)`` (the file
  itself on a local store, None on S3).
- versions: ``put_version(name, files: {relative name: bytes | Path}, metadata)``,
  ``put_version_dir(name, folder, metadata)`` (every file under ``folder``),
  ``versions(name)``, ``get_version(name, version="latest") -> ArtifactVersion``,
  ``iter_versions(name)``, ``read_version_file(name, version, fname) -> bytes`` (small files),
  ``open_version_file(name, version, fname)`` (streamed), ``download_version(name, version, dest)``
  (streams every file into ``dest/vNNNN``, which appears complete or not at all),
  ``version_local_path(name, version)`` (the version folder on a local store, None on S3),
  ``delete_version(name, version)``, ``prune_versions(name, keep, spare)`` (all but the ``keep`` newest and ``spare``),
  ``delete_folder(prefix)`` (plain keys).

Guarantees:

- metadata last: a version exists for readers once its ``metadata.json`` (written after every file)
  exists; a killed writer leaves no half version.
- idempotent: if the newest version has the same ``metadata['content_hash']``, ``put_version`` returns
  it instead of writing a new one.
- a ``put_version`` that fails while writing files (an exception, Ctrl-C) removes the files it wrote,
  best effort, and re-raises the original error; a killed process leaves its files but no version.
- no two writers ever get the same version number, across threads, processes and machines: a writer
  takes number N by creating the claim object ``.claims/<name>/vNNNN.claim`` atomically, "only if
  absent" (locally ``os.open(O_CREAT | O_EXCL)``; on S3 a conditional ``PutObject`` with
  ``If-None-Match: *``), and moves to N+1 when that fails. For S3-compatible servers without
  conditional writes (they answer 501 NotImplemented) the fallback is "write, then look": the writer
  puts ``vNNNN.claim.<random token>`` and keeps N only if its own token is the only claim listed for N
  (S3 lists are strongly consistent, so two writers can both lose, never both win). Numbers increase
  but may have gaps (a killed writer's claimed number is never reused).
- deleting is metadata first: ``delete_version`` removes ``metadata.json`` before the files, so a
  half-deleted version is no version (``versions``/``latest`` never return it) and a killed delete
  leaves files only, which ``prune_versions`` removes later. Claims are never deleted, so a deleted
  version's number is never given again (``versions`` can go back to empty; the numbering does not).
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import socket
from collections.abc import Collection, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

from twin_core.errors import BackendUnavailable, ConfigError, InputError
from twin_core.settings import Settings
from twin_core.stores.artifact_backends import Backend, LocalBackend, S3Backend, clean_key, tmp_name
from twin_core.stores.embedded import refuse_in_pod

METADATA_FILE = "metadata.json"
CLAIMS_PREFIX = ".claims"
_VERSION_RE = re.compile(r"^v(\d{4,})$")
_CLAIM_RE = re.compile(r"^v(\d{4,})\.claim(?:\.[0-9a-f]+)?$")
_MAX_CLAIM_ATTEMPTS = 1000


@dataclass(frozen=True)
class ArtifactVersion:
    name: str
    version: str  # "v0001"
    metadata: dict[str, Any]
    uri: str


class ArtifactStore:
    """Put/get blobs and JSON, and versioned artifacts with metadata."""

    def __init__(self, backend: Backend) -> None:
        self._b = backend

    # -- plain objects -------------------------------------------------------------------------
    def put_bytes(self, key: str, data: bytes) -> str:
        self._b.put_bytes(key, data)
        return self._b.uri(key)

    def get_bytes(self, key: str) -> bytes:
        return self._b.get_bytes(key)

    def put_json(self, key: str, obj: Any) -> str:
        return self.put_bytes(key, json.dumps(obj, indent=2, sort_keys=True, default=str).encode())

    def get_json(self, key: str) -> Any:
        return json.loads(self.get_bytes(key))

    def put_text(self, key: str, text: str) -> str:
        return self.put_bytes(key, text.encode("utf-8"))

    def exists(self, key: str) -> bool:
        return self._b.exists(key)

    def list(self, prefix: str = "") -> list[str]:
        return self._b.list_keys(prefix)

    def uri(self, key: str) -> str:
        return self._b.uri(key)

    def local_path(self, key: str) -> Path | None:
        """The object's file on a local store (read it in place); None on S3."""
        return self._b.local_path(key)

    def put_file(self, key: str, path: Path) -> str:
        """Upload a file by streaming it (any size)."""
        path = Path(path)
        if not path.is_file():
            raise InputError(f"{path}: not a file")
        self._b.put_file(key, path)
        return self._b.uri(key)

    def get_file(self, key: str, dest: Path) -> Path:
        """Download an object to ``dest`` by streaming (written to a temporary name, then renamed)."""
        dest = Path(dest)
        self._b.get_file(key, dest)
        return dest

    @contextlib.contextmanager
    def open_file(self, key: str) -> Iterator[IO[bytes]]:
        """A binary file object reading the object as a stream."""
        fh = self._b.open_read(key)
        try:
            yield fh
        finally:
            fh.close()

    # -- versioned artifacts -------------------------------------------------------------------
    def versions(self, name: str) -> list[str]:
        name = clean_key(name)
        found = set()
        for key in self._b.list_keys(name):
            rest = key[len(name) + 1 :].split("/")
            if len(rest) == 2 and rest[1] == METADATA_FILE and _VERSION_RE.match(rest[0]):
                found.add(rest[0])  # a version exists once its metadata (written last) exists
        return sorted(found, key=lambda v: int(v[1:]))

    def _claimed(self, name: str) -> list[int]:
        out = []
        for key in self._b.list_keys(f"{CLAIMS_PREFIX}/{name}"):
            rest = key[len(CLAIMS_PREFIX) + len(name) + 2 :]
            m = _CLAIM_RE.match(rest)
            if m and "/" not in rest:
                out.append(int(m.group(1)))
        return out

    def _claim_version(self, name: str, existing: list[str]) -> str:
        """Take the next free version number of ``name`` (atomically: see the module docstring)."""
        n = max([int(v[1:]) for v in existing] + self._claimed(name), default=0) + 1
        claim = json.dumps(
            {"host": socket.gethostname(), "pid": os.getpid(), "at": datetime.now(UTC).isoformat()}
        ).encode()
        for _ in range(_MAX_CLAIM_ATTEMPTS):
            version = f"v{n:04d}"
            if self._b.create_exclusive(f"{CLAIMS_PREFIX}/{name}/{version}.claim", claim):
                return version
            n += 1
        raise BackendUnavailable(f"could not claim a version of {name!r} after {_MAX_CLAIM_ATTEMPTS} attempts")

    def put_version(self, name: str, files: dict[str, bytes | Path], metadata: dict[str, Any]) -> ArtifactVersion:
        """Write a new version: files first (``Path`` values are streamed), ``metadata.json`` last (it
        marks the version complete).

        If the newest version has identical ``metadata['content_hash']``, it is returned unchanged, so
        re-running a step does not create a duplicate version. If writing a file fails, the files already
        written are removed (best effort) and the error re-raised.
        """
        name = clean_key(name)
        clean = {clean_key(fname): data for fname, data in files.items()}
        if METADATA_FILE in clean:
            raise InputError(f"{name}: a version file may not be called {METADATA_FILE} (it is the store's)")
        existing = self.versions(name)
        if existing and metadata.get("content_hash"):
            # the newest only: the newest version is what readers take as current, so content going back to an
            # earlier version's is written again as the newest (the model registry's register differs: a
            # stage, not recency, says which model is current)
            last = self.get_version(name, existing[-1])
            if last.metadata.get("content_hash") == metadata["content_hash"]:
                return last
        version = self._claim_version(name, existing)
        try:
            for fname, data in sorted(clean.items()):
                key = f"{name}/{version}/{fname}"
                if isinstance(data, Path):
                    self.put_file(key, data)
                else:
                    self._b.put_bytes(key, data)
        except BaseException:
            self._remove_partial(name, version)  # no metadata was written: the version never existed
            raise
        meta = {**metadata, "name": name, "version": version, "files": sorted(clean)}
        self._b.put_bytes(f"{name}/{version}/{METADATA_FILE}", json.dumps(meta, indent=2, default=str).encode())
        return ArtifactVersion(name, version, meta, self._b.uri(f"{name}/{version}"))

    def _remove_partial(self, name: str, version: str) -> None:
        """Best effort: delete the files a failed ``put_version`` wrote under ``name/version`` (never its
        metadata, which is written last). Errors here are swallowed: the caller re-raises the original one.
        The claim stays, so the number is not reused; a killed process leaves the files, but no version."""
        with contextlib.suppress(Exception):
            for key in self._b.list_keys(f"{name}/{version}"):
                if key.rsplit("/", 1)[-1] != METADATA_FILE:
                    self._b.delete(key)
            self._b.prune(f"{name}/{version}")

    def delete_version(self, name: str, version: str) -> None:
        """Delete a version: its ``metadata.json`` first (from then on no reader lists it), then its files.
        Killed in between, it leaves files but no version (``prune_versions`` removes them). The claim
        stays: the number is never given to another version. Deleting a missing version does nothing."""
        name = clean_key(name)
        if not _VERSION_RE.match(version):
            raise InputError(f"{name}: not a version: {version!r} (vNNNN)")
        self._b.delete(f"{name}/{version}/{METADATA_FILE}")
        for key in self._b.list_keys(f"{name}/{version}"):
            self._b.delete(key)
        self._b.prune(f"{name}/{version}")

    def delete_folder(self, prefix: str) -> int:
        """Delete every plain key under the folder ``prefix`` (``put_json``'s and the like; a version has
        ``delete_version``). Returns how many keys were deleted."""
        prefix = clean_key(prefix)
        keys = self._b.list_keys(prefix)
        for key in keys:
            self._b.delete(key)
        self._b.prune(prefix)
        return len(keys)

    def prune_versions(self, name: str, keep: int, spare: Collection[str] = ()) -> list[str]:
        """Keep the ``keep`` (>= 1) newest versions of ``name``, and the versions in ``spare``, and delete
        the older ones, each with ``delete_version`` (metadata first), together with the leftovers numbered
        below the oldest kept version (files without metadata: a killed writer's or a killed delete's;
        locally also the ``.part`` file of a copy killed midway). Returns the deleted version folders,
        oldest first. Nothing newer than the oldest kept version is touched, so a version being written is
        safe as long as ``name`` has one writer at a time (a training run's rank 0)."""
        if keep < 1:
            raise InputError(f"{name}: keep at least 1 version (got {keep})")
        name = clean_key(name)
        folders: dict[str, bool] = {}  # version folder -> complete (its metadata exists), from one listing
        for key in self._b.list_keys(name):
            parts = key[len(name) + 1 :].split("/")
            if len(parts) >= 2 and _VERSION_RE.match(parts[0]):
                folders[parts[0]] = folders.get(parts[0], False) or parts[1:] == [METADATA_FILE]
        kept = sorted(int(v[1:]) for v, complete in folders.items() if complete)[-keep:]
        if not kept:
            return []
        doomed = sorted([v for v in folders if int(v[1:]) < kept[0] and v not in spare], key=lambda v: int(v[1:]))
        for version in doomed:
            self.delete_version(name, version)
        for n in self._claimed(name):  # folders holding only unlisted temporary files (a local store's)
            if n < kept[0] and f"v{n:04d}" not in doomed and f"v{n:04d}" not in spare:
                self._b.prune(f"{name}/v{n:04d}")
        return doomed

    def put_version_dir(self, name: str, folder: Path, metadata: dict[str, Any]) -> ArtifactVersion:
        """``put_version`` of every file under ``folder`` (relative paths kept), streamed."""
        folder = Path(folder)
        if not folder.is_dir():
            raise InputError(f"{folder}: not a folder")
        files: dict[str, bytes | Path] = {
            p.relative_to(folder).as_posix(): p for p in sorted(folder.rglob("*")) if p.is_file()
        }
        if not files:
            raise InputError(f"{folder}: no files to store")
        return self.put_version(name, files, metadata)

    def get_version(self, name: str, version: str = "latest") -> ArtifactVersion:
        name = clean_key(name)
        if version == "latest":
            all_versions = self.versions(name)
            if not all_versions:
                raise InputError(f"no versions of artifact {name!r}")
            version = all_versions[-1]
        meta = json.loads(self._b.get_bytes(f"{name}/{version}/{METADATA_FILE}"))
        return ArtifactVersion(name, version, meta, self._b.uri(f"{name}/{version}"))

    def read_version_file(self, name: str, version: str, fname: str) -> bytes:
        """A (small) version file, whole. Stream big ones with ``open_version_file``."""
        return self._b.get_bytes(f"{clean_key(name)}/{version}/{clean_key(fname)}")

    def open_version_file(self, name: str, version: str, fname: str) -> contextlib.AbstractContextManager[IO[bytes]]:
        return self.open_file(f"{clean_key(name)}/{version}/{clean_key(fname)}")

    def version_local_path(self, name: str, version: str) -> Path | None:
        """The version's folder on a local store (its files can be used in place); None on S3."""
        return self._b.local_path(f"{clean_key(name)}/{version}")

    def download_version(self, name: str, version: str, dest: Path) -> Path:
        """Stream every file of a version into ``dest/<version>`` (replaced if present) and return it.

        Files go to a temporary sibling folder renamed at the end, so ``dest/<version>`` is either
        complete or absent, even if the download is killed."""
        av = self.get_version(name, version)
        dest = Path(dest)
        target = dest / av.version
        staging = tmp_name(target)
        try:
            for fname in av.metadata.get("files", []):
                self.get_file(f"{av.name}/{av.version}/{fname}", staging / fname)
            staging.mkdir(parents=True, exist_ok=True)  # a version without files is an empty folder
            if target.exists():
                shutil.rmtree(target)
            staging.rename(target)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        return target

    def iter_versions(self, name: str) -> Iterator[ArtifactVersion]:
        for v in self.versions(name):
            yield self.get_version(name, v)


def open_artifact_store(settings: Settings) -> ArtifactStore:
    if not settings.artifacts_uri:  # the default folder under TWIN_HOME: refused in kubernetes mode
        refuse_in_pod(settings, "TWIN_ARTIFACTS_URI")
    location = settings.artifacts_location
    if location.startswith("s3://"):
        bucket, _, prefix = location[5:].partition("/")
        if not bucket:
            raise ConfigError(f"TWIN_ARTIFACTS_URI: no bucket in {location!r}")
        return ArtifactStore(S3Backend(bucket, prefix, settings.s3_endpoint_url))
    if "://" in location and not location.startswith("file://"):
        raise ConfigError(f"TWIN_ARTIFACTS_URI: unsupported scheme in {location!r} (use s3:// or a path)")
    return ArtifactStore(LocalBackend(Path(location.removeprefix("file://"))))
