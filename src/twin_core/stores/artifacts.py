"""Artifact store: datasets, models, reports. S3 (``s3://bucket/prefix``) or a local directory.

Versioned artifacts live at ``<name>/v<NNNN>/`` with a ``metadata.json`` beside their files, so a
reader can always ask for ``latest(name)`` or a pinned version.
"""

from __future__ import annotations

import json
import re
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any, Protocol

from twin_core.errors import BackendUnavailable, ConfigError, InputError
from twin_core.settings import Settings

METADATA_FILE = "metadata.json"
_VERSION_RE = re.compile(r"^v(\d{4,})$")


def _clean_key(key: str) -> str:
    parts = PurePosixPath(key.strip("/")).parts
    if not parts or any(p in ("..", ".") for p in parts):
        raise InputError(f"invalid artifact key {key!r}")
    return "/".join(parts)


class _Backend(Protocol):
    def put_bytes(self, key: str, data: bytes) -> None: ...
    def get_bytes(self, key: str) -> bytes: ...
    def exists(self, key: str) -> bool: ...
    def list_keys(self, prefix: str) -> list[str]: ...
    def uri(self, key: str) -> str: ...


class LocalBackend:
    def __init__(self, root: Path) -> None:
        self.root = root

    def _path(self, key: str) -> Path:
        return self.root / _clean_key(key)

    def put_bytes(self, key: str, data: bytes) -> None:
        path = self._path(key)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_name(path.name + ".part")
            tmp.write_bytes(data)
            tmp.replace(path)  # atomic: a killed writer never leaves a half file under the real key
        except PermissionError as exc:
            raise ConfigError(f"TWIN_ARTIFACTS_URI: cannot write {path}: {exc.strerror}") from None

    def get_bytes(self, key: str) -> bytes:
        try:
            return self._path(key).read_bytes()
        except FileNotFoundError:
            raise InputError(f"artifact not found: {self.uri(key)}") from None

    def exists(self, key: str) -> bool:
        return self._path(key).is_file()

    def list_keys(self, prefix: str) -> list[str]:
        base = self.root / prefix.strip("/") if prefix.strip("/") else self.root
        if not base.exists():
            return []
        return sorted(
            p.relative_to(self.root).as_posix() for p in base.rglob("*") if p.is_file() and not p.name.endswith(".part")
        )

    def uri(self, key: str) -> str:
        return str(self._path(key))


class S3Backend:
    def __init__(self, bucket: str, prefix: str, endpoint_url: str | None = None) -> None:
        import boto3  # boto3 is light enough, but keep imports lazy like every store
        from botocore.config import Config

        self.bucket = bucket
        self.prefix = prefix.strip("/")
        self._client = boto3.client(
            "s3",
            endpoint_url=endpoint_url,
            config=Config(connect_timeout=5, read_timeout=30, retries={"max_attempts": 3}),
        )

    def _key(self, key: str) -> str:
        key = _clean_key(key)
        return f"{self.prefix}/{key}" if self.prefix else key

    def _call(self, fn: Any, **kwargs: Any) -> Any:
        from botocore.exceptions import BotoCoreError, ClientError, NoCredentialsError

        try:
            return fn(**kwargs)
        except NoCredentialsError:
            raise ConfigError("AWS credentials missing for TWIN_ARTIFACTS_URI (set AWS_* or a role)") from None
        except ClientError as exc:
            code = exc.response.get("Error", {}).get("Code", "")
            if code in ("NoSuchKey", "404"):
                raise InputError(f"artifact not found: s3://{self.bucket}/{kwargs.get('Key')}") from None
            raise BackendUnavailable(f"S3 s3://{self.bucket}: {code or exc}") from None
        except BotoCoreError as exc:
            raise BackendUnavailable(f"S3 s3://{self.bucket}: {exc}") from None

    def put_bytes(self, key: str, data: bytes) -> None:
        self._call(self._client.put_object, Bucket=self.bucket, Key=self._key(key), Body=data)

    def get_bytes(self, key: str) -> bytes:
        resp = self._call(self._client.get_object, Bucket=self.bucket, Key=self._key(key))
        return resp["Body"].read()

    def exists(self, key: str) -> bool:
        try:
            self._call(self._client.head_object, Bucket=self.bucket, Key=self._key(key))
        except InputError:
            return False
        return True

    def list_keys(self, prefix: str) -> list[str]:
        full = self._key(prefix) + "/" if prefix.strip("/") else (self.prefix + "/" if self.prefix else "")
        keys: list[str] = []
        paginator = self._client.get_paginator("list_objects_v2")
        pages = self._call(lambda: list(paginator.paginate(Bucket=self.bucket, Prefix=full)))
        for page in pages:
            for obj in page.get("Contents", []):
                k = obj["Key"]
                keys.append(k[len(self.prefix) + 1 :] if self.prefix else k)
        return sorted(keys)

    def uri(self, key: str) -> str:
        return f"s3://{self.bucket}/{self._key(key)}"


@dataclass(frozen=True)
class ArtifactVersion:
    name: str
    version: str  # "v0001"
    metadata: dict[str, Any]
    uri: str


class ArtifactStore:
    """Put/get blobs and JSON, and versioned artifacts with metadata."""

    def __init__(self, backend: _Backend) -> None:
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

    def put_file(self, key: str, path: Path) -> str:
        return self.put_bytes(key, Path(path).read_bytes())

    def get_file(self, key: str, dest: Path) -> Path:
        dest.parent.mkdir(parents=True, exist_ok=True)
        dest.write_bytes(self.get_bytes(key))
        return dest

    # -- versioned artifacts -------------------------------------------------------------------
    def versions(self, name: str) -> list[str]:
        name = _clean_key(name)
        found = set()
        for key in self._b.list_keys(name):
            rest = key[len(name) + 1 :].split("/")
            if len(rest) == 2 and rest[1] == METADATA_FILE and _VERSION_RE.match(rest[0]):
                found.add(rest[0])  # a version exists once its metadata (written last) exists
        return sorted(found, key=lambda v: int(v[1:]))

    def put_version(self, name: str, files: dict[str, bytes | Path], metadata: dict[str, Any]) -> ArtifactVersion:
        """Write a new version: files first, ``metadata.json`` last (it marks the version complete).

        If the newest version has identical ``metadata['content_hash']``, it is returned unchanged,
        so re-running a step does not create a duplicate version.
        """
        name = _clean_key(name)
        existing = self.versions(name)
        if existing and metadata.get("content_hash"):
            last = self.get_version(name, existing[-1])
            if last.metadata.get("content_hash") == metadata["content_hash"]:
                return last
        version = f"v{(int(existing[-1][1:]) + 1) if existing else 1:04d}"
        for fname, data in sorted(files.items()):
            payload = data.read_bytes() if isinstance(data, Path) else data
            self._b.put_bytes(f"{name}/{version}/{_clean_key(fname)}", payload)
        meta = {**metadata, "name": name, "version": version, "files": sorted(files)}
        self._b.put_bytes(f"{name}/{version}/{METADATA_FILE}", json.dumps(meta, indent=2, default=str).encode())
        return ArtifactVersion(name, version, meta, self._b.uri(f"{name}/{version}"))

    def get_version(self, name: str, version: str = "latest") -> ArtifactVersion:
        name = _clean_key(name)
        if version == "latest":
            all_versions = self.versions(name)
            if not all_versions:
                raise InputError(f"no versions of artifact {name!r}")
            version = all_versions[-1]
        meta = json.loads(self._b.get_bytes(f"{name}/{version}/{METADATA_FILE}"))
        return ArtifactVersion(name, version, meta, self._b.uri(f"{name}/{version}"))

    def read_version_file(self, name: str, version: str, fname: str) -> bytes:
        return self._b.get_bytes(f"{_clean_key(name)}/{version}/{_clean_key(fname)}")

    def download_version(self, name: str, version: str, dest: Path) -> Path:
        av = self.get_version(name, version)
        target = dest / av.version
        if target.exists():
            shutil.rmtree(target)
        for fname in av.metadata.get("files", []):
            self.get_file(f"{av.name}/{av.version}/{fname}", target / fname)
        return target

    def iter_versions(self, name: str) -> Iterator[ArtifactVersion]:
        for v in self.versions(name):
            yield self.get_version(name, v)


def open_artifact_store(settings: Settings) -> ArtifactStore:
    location = settings.artifacts_location
    if location.startswith("s3://"):
        bucket, _, prefix = location[5:].partition("/")
        if not bucket:
            raise ConfigError(f"TWIN_ARTIFACTS_URI: no bucket in {location!r}")
        return ArtifactStore(S3Backend(bucket, prefix, settings.s3_endpoint_url))
    if "://" in location and not location.startswith("file://"):
        raise ConfigError(f"TWIN_ARTIFACTS_URI: unsupported scheme in {location!r} (use s3:// or a path)")
    return ArtifactStore(LocalBackend(Path(location.removeprefix("file://"))))
