"""The artifact store's two backends: a local directory (``LocalBackend``) and S3 (``S3Backend``).

Both stream files (file copies locally; boto3's managed, multipart transfer on S3), write through a
temporary name then rename or upload whole, and create claim objects "only if absent"
(``create_exclusive``: ``os.open(O_CREAT | O_EXCL)`` locally, a conditional ``PutObject`` with
``If-None-Match: *`` on S3, "write, then look" where the server has no conditional writes). S3 failures
become twin errors: missing credentials ``ConfigError``, a missing key ``InputError``, anything else
``BackendUnavailable``. ``ArtifactStore`` (``artifacts.py``) builds versions on top of them.
"""

from __future__ import annotations

import os
import shutil
import uuid
from pathlib import Path, PurePosixPath
from typing import IO, Any, Protocol

from twin_core.errors import BackendUnavailable, ConfigError, InputError


def clean_key(key: str) -> str:
    parts = PurePosixPath(key.strip("/")).parts
    if not parts or any(p in ("..", ".") for p in parts):
        raise InputError(f"invalid artifact key {key!r}")
    return "/".join(parts)


def tmp_name(path: Path) -> Path:
    """A temporary sibling of ``path``, unique per writer (never listed: it ends in ``.part``)."""
    return path.with_name(f"{path.name}.{uuid.uuid4().hex[:12]}.part")


class Backend(Protocol):
    def put_bytes(self, key: str, data: bytes) -> None: ...
    def get_bytes(self, key: str) -> bytes: ...
    def put_file(self, key: str, path: Path) -> None: ...
    def get_file(self, key: str, dest: Path) -> None: ...
    def open_read(self, key: str) -> IO[bytes]: ...
    def create_exclusive(self, key: str, data: bytes) -> bool: ...
    def exists(self, key: str) -> bool: ...
    def list_keys(self, prefix: str) -> list[str]: ...
    def uri(self, key: str) -> str: ...
    def local_path(self, key: str) -> Path | None: ...
    def delete(self, key: str) -> None: ...
    def prune(self, prefix: str) -> None: ...


class LocalBackend:
    def __init__(self, root: Path) -> None:
        self.root = root

    def _path(self, key: str) -> Path:
        return self.root / clean_key(key)

    def _write_via_tmp(self, path: Path, write: Any) -> None:
        """``write(tmp)`` then rename onto ``path``: a killed writer never leaves a half file under the key."""
        tmp = tmp_name(path)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            write(tmp)
            tmp.replace(path)
        except PermissionError as exc:
            raise ConfigError(f"TWIN_ARTIFACTS_URI: cannot write {path}: {exc.strerror}") from None
        finally:
            tmp.unlink(missing_ok=True)

    def put_bytes(self, key: str, data: bytes) -> None:
        self._write_via_tmp(self._path(key), lambda tmp: tmp.write_bytes(data))

    def get_bytes(self, key: str) -> bytes:
        try:
            return self._path(key).read_bytes()
        except (FileNotFoundError, IsADirectoryError):
            raise InputError(f"artifact not found: {self.uri(key)}") from None

    def put_file(self, key: str, path: Path) -> None:
        self._write_via_tmp(self._path(key), lambda tmp: shutil.copyfile(path, tmp))

    def get_file(self, key: str, dest: Path) -> None:
        src = self._path(key)
        if not src.is_file():
            raise InputError(f"artifact not found: {self.uri(key)}")
        dest.parent.mkdir(parents=True, exist_ok=True)
        tmp = tmp_name(dest)
        try:
            shutil.copyfile(src, tmp)
            tmp.replace(dest)
        finally:
            tmp.unlink(missing_ok=True)

    def open_read(self, key: str) -> IO[bytes]:
        try:
            return self._path(key).open("rb")
        except (FileNotFoundError, IsADirectoryError):
            raise InputError(f"artifact not found: {self.uri(key)}") from None

    def create_exclusive(self, key: str, data: bytes) -> bool:
        path = self._path(key)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            return False
        except PermissionError as exc:
            raise ConfigError(f"TWIN_ARTIFACTS_URI: cannot write {path}: {exc.strerror}") from None
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        return True

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

    def delete(self, key: str) -> None:
        self._path(key).unlink(missing_ok=True)

    def prune(self, prefix: str) -> None:
        """Remove the empty folders left under (and at) ``prefix``, and stray ``.part`` files in them."""
        base = self._path(prefix)
        if not base.is_dir():
            return
        for p in sorted(base.rglob("*"), key=lambda q: len(q.parts), reverse=True):
            if p.is_file() and p.name.endswith(".part"):
                p.unlink(missing_ok=True)
            elif p.is_dir() and not any(p.iterdir()):
                p.rmdir()
        if not any(base.iterdir()):
            base.rmdir()

    def local_path(self, key: str) -> Path | None:
        return self._path(key)


class S3Backend:
    def __init__(
        self,
        bucket: str,
        prefix: str,
        endpoint_url: str | None = None,
        *,
        conditional_writes: bool | None = None,  # None: use them, fall back if the server has none
    ) -> None:
        import boto3  # boto3 is light enough, but keep imports lazy like every store
        from boto3.s3.transfer import TransferConfig
        from botocore.config import Config

        self.bucket = bucket
        self.prefix = prefix.strip("/")
        self.conditional_writes = conditional_writes
        self._client = boto3.client(
            "s3",
            endpoint_url=endpoint_url,
            config=Config(connect_timeout=5, read_timeout=30, retries={"max_attempts": 3}),
        )
        # managed transfer: multipart above 64 MiB, a few parts in flight, constant memory
        self._transfer = TransferConfig(
            multipart_threshold=64 * 2**20, multipart_chunksize=64 * 2**20, max_concurrency=4
        )

    def _key(self, key: str) -> str:
        key = clean_key(key)
        return f"{self.prefix}/{key}" if self.prefix else key

    def _call(self, fn: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except Exception as exc:
            raise self._mapped(exc, kwargs.get("Key", "")) from None

    def _mapped(self, exc: Exception, key: str = "") -> Exception:
        """The twin error for a boto3/botocore failure (other exceptions unchanged)."""
        from boto3.exceptions import S3TransferFailedError, S3UploadFailedError
        from botocore.exceptions import BotoCoreError, ClientError, NoCredentialsError

        if isinstance(exc, NoCredentialsError):
            return ConfigError("AWS credentials missing for TWIN_ARTIFACTS_URI (set AWS_* or a role)")
        if isinstance(exc, ClientError):
            code = exc.response.get("Error", {}).get("Code", "")
            if code in ("NoSuchKey", "404"):
                return InputError(f"artifact not found: s3://{self.bucket}/{key}")
            return BackendUnavailable(f"S3 s3://{self.bucket}: {code or exc}")
        if isinstance(exc, BotoCoreError | S3UploadFailedError | S3TransferFailedError):
            return BackendUnavailable(f"S3 s3://{self.bucket}: {exc}")
        return exc

    def put_bytes(self, key: str, data: bytes) -> None:
        self._call(self._client.put_object, Bucket=self.bucket, Key=self._key(key), Body=data)

    def get_bytes(self, key: str) -> bytes:
        resp = self._call(self._client.get_object, Bucket=self.bucket, Key=self._key(key))
        return resp["Body"].read()

    def put_file(self, key: str, path: Path) -> None:
        self._call(
            self._client.upload_file, Filename=str(path), Bucket=self.bucket, Key=self._key(key), Config=self._transfer
        )

    def get_file(self, key: str, dest: Path) -> None:
        dest.parent.mkdir(parents=True, exist_ok=True)
        tmp = tmp_name(dest)
        try:
            self._call(
                self._client.download_file,
                Bucket=self.bucket,
                Key=self._key(key),
                Filename=str(tmp),
                Config=self._transfer,
            )
            tmp.replace(dest)
        finally:
            tmp.unlink(missing_ok=True)

    def open_read(self, key: str) -> IO[bytes]:
        return self._call(self._client.get_object, Bucket=self.bucket, Key=self._key(key))["Body"]

    def create_exclusive(self, key: str, data: bytes) -> bool:
        from botocore.exceptions import ClientError

        if self.conditional_writes is not False:
            try:
                self._client.put_object(Bucket=self.bucket, Key=self._key(key), Body=data, IfNoneMatch="*")
                self.conditional_writes = True
                return True
            except ClientError as exc:
                code = exc.response.get("Error", {}).get("Code", "")
                status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
                if code == "PreconditionFailed" or status == 412:
                    return False  # someone else holds it
                if code == "ConditionalRequestConflict" or status == 409:
                    return False  # a concurrent conditional write of the same key is in flight
                if code not in ("NotImplemented", "501") and status != 501:
                    raise self._mapped(exc, key) from None
                self.conditional_writes = False  # this server has no conditional writes: fall back
            except Exception as exc:
                raise self._mapped(exc, key) from None
        # write, then look: keep the key only if our token is the only claim on it
        mine = f"{key}.{uuid.uuid4().hex}"
        self.put_bytes(mine, data)
        rivals = [k for k in self.list_keys(key.rsplit("/", 1)[0]) if k == key or k.startswith(key + ".")]
        return rivals == [mine]

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

    def delete(self, key: str) -> None:
        self._call(self._client.delete_object, Bucket=self.bucket, Key=self._key(key))

    def prune(self, prefix: str) -> None:
        """S3 has no folders (an aborted multipart upload is boto3's to abort)."""

    def local_path(self, key: str) -> Path | None:
        return None
