"""Dataset versions in the artifact store: ``datasets/<kind>/<author_slug>/vNNNN/``.

A version id is ``<kind>/<author_slug>/vNNNN`` (``instruct/ada-quillfeather/v0002``): the string that
CLIs, XCom, Asset extras and model lineage carry. Files: ``<split>.parquet`` per split, optional
``rejected.parquet`` (rows the quality checks kept apart, with reasons) and ``metadata.json`` (last).
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from typing import Any

from twin_core.errors import InputError
from twin_core.settings import Settings

KINDS = ("instruct", "preference")
PREFIX = "datasets"


def artifact_name(kind: str, author_slug: str) -> str:
    return f"{PREFIX}/{kind}/{author_slug}"


def parse_version_id(version_id: str) -> tuple[str, str, str]:
    """``instruct/ada/v0001`` -> ("instruct", "ada", "v0001"); anything else is an InputError."""
    parts = version_id.strip().strip("/").removeprefix(f"{PREFIX}/").split("/")
    if len(parts) != 3 or parts[0] not in KINDS or not parts[2].startswith("v"):
        raise InputError(f"dataset version {version_id!r}: expected instruct|preference/<author_slug>/vNNNN")
    return parts[0], parts[1], parts[2]


def to_parquet(rows: list[dict[str, Any]]) -> bytes:
    import pyarrow as pa
    import pyarrow.parquet as pq

    buf = io.BytesIO()
    pq.write_table(pa.Table.from_pylist(rows), buf)
    return buf.getvalue()


@dataclass
class DatasetVersion:
    version_id: str
    kind: str
    author: str
    author_slug: str
    version: str
    metadata: dict[str, Any]
    _store: Any

    @property
    def name(self) -> str:
        return artifact_name(self.kind, self.author_slug)

    def rows(self, split: str) -> list[dict[str, Any]]:
        """The rows of ``split`` ("train", "test", or "rejected"), in stored order; [] if absent."""
        import pyarrow.parquet as pq

        fname = f"{split}.parquet"
        if fname not in self.metadata.get("files", []):
            return []
        with self._store.open_version_file(self.name, self.version, fname) as fh:
            # No Arrow thread pools: their workers can outlive the interpreter and abort the process
            # at exit (apache/arrow#34314, "terminate called without an active exception"); files are small.
            return pq.read_table(io.BytesIO(fh.read()), use_threads=False, pre_buffer=False).to_pylist()


def load_dataset_version(settings: Settings, version_id: str) -> DatasetVersion:
    from twin_core.stores.artifacts import open_artifact_store

    kind, slug, version = parse_version_id(version_id)
    store = open_artifact_store(settings)
    known = store.versions(artifact_name(kind, slug))
    if version not in known:
        if known:
            there = f"{kind} versions of {slug}: {', '.join(known)}"
        else:
            authors = sorted({key.split("/")[2] for key in store.list(f"{PREFIX}/{kind}/") if key.count("/") >= 4})
            there = f"no {kind} dataset of {slug}; authors with one: {', '.join(authors) or 'none yet'}"
        raise InputError(f"unknown dataset version {kind}/{slug}/{version} ({there}; see `twin datasets list`)")
    meta = store.get_version(artifact_name(kind, slug), version).metadata
    return DatasetVersion(f"{kind}/{slug}/{version}", kind, meta.get("author") or slug, slug, version, meta, store)


def latest_version(settings: Settings, kind: str, author_slug: str) -> str | None:
    from twin_core.stores.artifacts import open_artifact_store

    found = open_artifact_store(settings).versions(artifact_name(kind, author_slug))
    return f"{kind}/{author_slug}/{found[-1]}" if found else None


def list_versions(settings: Settings, kind: str | None = None) -> list[str]:
    """Every dataset version id, by kind, author and version number."""
    from twin_core.stores.artifacts import open_artifact_store

    store = open_artifact_store(settings)
    out: list[str] = []
    for k in [kind] if kind else list(KINDS):
        slugs = sorted({key.split("/")[2] for key in store.list(f"{PREFIX}/{k}/") if key.count("/") >= 4})
        for slug in slugs:
            out += [f"{k}/{slug}/{v}" for v in store.versions(artifact_name(k, slug))]
    return out
