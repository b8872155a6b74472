"""Warehouse backup import/export in the *LLM Engineer's Handbook* format.

One JSON list per class: ``UserDocument.json``, ``ArticleDocument.json``, ``PostDocument.json`` and
``RepositoryDocument.json``. Our export writes the same files with a few extra fields (timestamps,
quarantine flags), and our import reads both. Ids are re-derived (users from the full name,
documents from the link), so importing the same file twice changes nothing. A link is one document: a
later row for a link this import already wrote with other content (or in another class file), or a link
stored in another category, is rejected with the row it conflicts with (the first one given wins).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from twin_core.domain.documents import Category, RawDocument, UserDocument, document_class
from twin_core.errors import InputError, writing_to
from twin_core.progress import ProgressFactory, silent
from twin_core.stores.warehouse import Outcome, Warehouse

log = logging.getLogger(__name__)

CLASS_FILES: dict[str, Category | None] = {
    "UserDocument.json": None,
    "ArticleDocument.json": Category.ARTICLES,
    "PostDocument.json": Category.POSTS,
    "RepositoryDocument.json": Category.REPOSITORIES,
}
MAX_CONTENT_BYTES = 15_000_000  # a document's content, below MongoDB's 16 MB document limit
_EXTRA_FIELDS = ("crawled_at", "checked_at", "published_at", "quarantined", "quarantine_reasons")


@dataclass
class ImportReport:
    files: list[str] = field(default_factory=list)
    counts: dict[str, dict[str, int]] = field(default_factory=dict)
    rejected: list[dict[str, str]] = field(default_factory=list)

    def add(self, kind: str, outcome: Outcome) -> None:
        bucket = self.counts.setdefault(kind, {o.value: 0 for o in Outcome})
        bucket[outcome.value] += 1

    def as_dict(self) -> dict[str, Any]:
        return {"files": self.files, "counts": self.counts, "rejected": self.rejected}


def resolve_import_files(paths: Iterable[Path]) -> list[Path]:
    """Expand directories into their class files; check every name is a known class."""
    files: list[Path] = []
    for path in paths:
        if path.is_dir():
            found = [path / name for name in CLASS_FILES if (path / name).is_file()]
            if not found:
                raise InputError(f"{path}: no {', '.join(CLASS_FILES)} inside")
            files.extend(found)
        elif path.is_file():
            if path.name not in CLASS_FILES:
                raise InputError(
                    f"{path}: unknown category file {path.name!r} (expected one of: {', '.join(CLASS_FILES)})"
                )
            files.append(path)
        else:
            raise InputError(f"{path}: no such file or directory")
    # one each (the same file named twice), in the order given: of two backups, the first given wins
    unique: dict[Path, Path] = {}
    for path in files:
        unique.setdefault(path.resolve(), path)
    # users first, so that documents can resolve author ids (a stable sort: the given order within a name)
    return sorted(unique.values(), key=lambda p: (CLASS_FILES[p.name] is not None, p.name))


def _load_list(path: Path) -> list[dict[str, Any]]:
    try:
        data = json.loads(path.read_text(encoding="utf-8-sig"))  # a byte-order mark (Windows editors) is fine
    except UnicodeDecodeError:
        raise InputError(f"{path}: not UTF-8 text") from None
    except json.JSONDecodeError as exc:
        raise InputError(f"{path}: malformed JSON at line {exc.lineno} column {exc.colno}: {exc.msg}") from None
    if not isinstance(data, list) or not all(isinstance(r, dict) for r in data):
        raise InputError(f"{path}: expected a JSON list of objects")
    return data


class _Links:
    """Which document each link (document id) is in this import: a row must not contradict an earlier row
    of the import (same link, other content or category), nor a document stored in another category."""

    def __init__(self, stored: dict[str, tuple[Category, str]]) -> None:
        self.stored = stored  # id -> (category, content hash) of the warehouse before the import
        self.written: dict[str, tuple[Category, str, str]] = {}  # id -> (category, content hash, row)

    def check(self, doc: RawDocument) -> None:
        earlier = self.written.get(doc.id)
        if earlier is not None:
            if earlier[:2] != (doc.category, doc.content_hash):
                other = "in another category" if earlier[0] is not doc.category else "with other content"
                raise InputError(f"{doc.link}: same link as {earlier[2]}, {other} ({earlier[2]} was kept)")
            return
        stored = self.stored.get(doc.id)
        if stored is not None and stored[0] is not doc.category:
            raise InputError(f"{doc.link}: already stored as one of the {stored[0].value} (one category per link)")

    def wrote(self, doc: RawDocument, where: str) -> None:
        self.written.setdefault(doc.id, (doc.category, doc.content_hash, where))


def import_paths(warehouse: Warehouse, paths: Iterable[Path], *, progress: ProgressFactory = silent) -> ImportReport:
    """Import every file; a malformed file fails before anything is written, a bad row is rejected with its
    reason and the rest imported."""
    files = resolve_import_files(paths)
    loaded = [(f, _load_list(f)) for f in files]  # parse all first: a bad file writes nothing
    report = ImportReport(files=[str(f) for f in files])
    author_names: dict[str, str] = {}  # source user _id -> full name
    links = _Links(warehouse.content_hashes(include_quarantined=True))
    for path, rows in loaded:
        category = CLASS_FILES[path.name]
        for index, row in enumerate(progress(rows, desc=f"import {path.name}", unit="doc")):
            try:
                if category is None:
                    user = _user_from_row(row)
                    author_names[str(row.get("_id", user.id))] = user.full_name
                    report.add("users", warehouse.upsert_user(user))
                else:
                    doc = _document_from_row(category, row, author_names)
                    links.check(doc)
                    warehouse.get_or_create_user(doc.author_full_name)
                    report.add(category.value, warehouse.upsert_document(doc, touch=False))
                    links.wrote(doc, f"{path.name}[{index}]")
            except (ValidationError, InputError, KeyError, TypeError, ValueError) as exc:
                reason = _reason(exc)
                report.rejected.append({"file": path.name, "index": str(index), "reason": reason})
                log.warning("%s[%d] rejected: %s", path.name, index, reason)
    return report


def _reason(exc: Exception) -> str:
    if isinstance(exc, ValidationError):
        err = exc.errors()[0]
        where, msg = ".".join(str(p) for p in err["loc"]), err["msg"].removeprefix("Value error, ")
        return f"{where}: {msg}" if where else msg
    if isinstance(exc, KeyError):
        return f"missing field {exc.args[0]!r}"
    return str(exc)


def _user_from_row(row: dict[str, Any]) -> UserDocument:
    names = [row.get(k) for k in ("first_name", "last_name")]
    if any(n is not None and not isinstance(n, str) for n in names):
        raise InputError("first_name/last_name must be text")
    full = " ".join(n or "" for n in names).strip()
    if not full:
        raise InputError("user has no first_name/last_name")
    return UserDocument.from_full_name(full)


def _document_from_row(category: Category, row: dict[str, Any], author_names: dict[str, str]) -> RawDocument:
    name = row.get("author_full_name") or author_names.get(str(row.get("author_id")))
    if not name:
        raise InputError("document has no author_full_name and an unknown author_id")
    if not isinstance(row.get("content"), dict) or not row["content"]:
        raise InputError("content must be a non-empty object")
    size = len(json.dumps(row["content"], ensure_ascii=False).encode("utf-8", errors="surrogatepass"))
    if size > MAX_CONTENT_BYTES:
        raise InputError(f"content is {size:,} bytes, over the {MAX_CONTENT_BYTES:,}-byte limit of a document")
    author = UserDocument.from_full_name(name)
    fields: dict[str, Any] = {
        "link": row["link"],
        "platform": row.get("platform") or "unknown",
        "author_id": author.id,
        "author_full_name": author.full_name,
        "content": row["content"],
    }
    for key in _EXTRA_FIELDS:
        if row.get(key) is not None:
            fields[key] = row[key]
    if category is Category.POSTS and row.get("image"):
        fields["image"] = row["image"]
    if category is Category.REPOSITORIES:
        fields["name"] = row.get("name") or row["link"].rstrip("/").rsplit("/", 1)[-1]
    return document_class(category)(**fields)


def export_dir(warehouse: Warehouse, out: Path) -> dict[str, int]:
    """Write the backup files to ``out``; deterministic order, so diffs stay readable."""
    with writing_to(out, "the backup"):
        out.mkdir(parents=True, exist_ok=True)
        counts: dict[str, int] = {}
        users = [{"_id": u.id, "first_name": u.first_name, "last_name": u.last_name} for u in warehouse.users()]
        _write(out / "UserDocument.json", users)
        counts["users"] = len(users)
        for fname, category in CLASS_FILES.items():
            if category is None:
                continue
            rows = []
            for doc in warehouse.iter_documents(category, include_quarantined=True):
                row = doc.to_mongo()
                row.pop("category", None)
                row.pop("content_hash", None)
                rows.append(row)
            _write(out / fname, rows)
            counts[category.value] = len(rows)
    return counts


def _write(path: Path, rows: list[dict[str, Any]]) -> None:
    def default(obj: Any) -> Any:
        if isinstance(obj, datetime):
            return obj.isoformat()
        raise TypeError(type(obj).__name__)

    tmp = path.with_suffix(".json.part")
    tmp.write_text(json.dumps(rows, indent=2, ensure_ascii=False, sort_keys=True, default=default) + "\n")
    tmp.replace(path)
