"""The data warehouse: users, raw documents (one collection per category) and the inference log.

Built on the pymongo ``Database`` API only, so MongoDB and the embedded litemongo behave alike.
Every write is an upsert keyed by a deterministic id, and a content hash decides whether anything
changed, so re-running a step never duplicates data.

The backend stays inside this package: callers use the ``Warehouse`` methods, never the database.
The embedded litemongo keeps one SQLite connection per collection, usable only by the thread that
opened it; so an embedded ``Warehouse`` runs every call on one dedicated thread of its own
(``OwnerThread``) and may be called from any thread (servers call it from worker threads).
"""

from __future__ import annotations

import functools
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any

from twin_core.domain.documents import (
    USERS_COLLECTION,
    Category,
    RawDocument,
    UserDocument,
    document_class,
    utcnow,
)
from twin_core.domain.ids import normalize_full_name, user_id
from twin_core.domain.inference import INFERENCE_LOGS_COLLECTION, InferenceLog
from twin_core.settings import Settings
from twin_core.stores.owner_thread import OwnerThread


def _owned(method: Any) -> Any:
    """Run a ``Warehouse`` method on the warehouse's owner thread (when it has one)."""

    @functools.wraps(method)
    def call(self: Warehouse, *args: Any, **kwargs: Any) -> Any:
        if self._owner is None:
            return method(self, *args, **kwargs)
        return self._owner.run(method, self, *args, **kwargs)

    return call


# A crawled document's outcome (created/updated) while no validation has seen it (see upsert_document).
PENDING_FIELD = "crawl_pending"


class Outcome(StrEnum):
    CREATED = "created"
    UPDATED = "updated"
    UNCHANGED = "unchanged"


@dataclass
class UpsertReport:
    counts: Counter = field(default_factory=Counter)

    def add(self, outcome: Outcome) -> None:
        self.counts[outcome.value] += 1

    def as_dict(self) -> dict[str, int]:
        return {o.value: self.counts.get(o.value, 0) for o in Outcome}


class Warehouse:
    """Repository over a pymongo ``Database``; ``owner`` is the thread the database is bound to, if any."""

    def __init__(self, db: Any, owner: OwnerThread | None = None) -> None:
        self._db = db
        self._owner = owner
        self._indexed = False

    def close(self) -> None:
        """Close the database connection (and the owner thread). The warehouse is unusable after."""
        client = getattr(self._db, "client", None)
        if client is not None:
            if self._owner is not None:
                self._owner.run(client.close)
            else:
                client.close()
        if self._owner is not None:
            self._owner.close()

    # -- setup ---------------------------------------------------------------------------------
    @_owned
    def ensure_indexes(self) -> None:
        if self._indexed:
            return
        for cat in Category:
            col = self._db[cat.collection]
            col.create_index("link", unique=True)
            col.create_index("author_id")
        self._db[USERS_COLLECTION].create_index("full_name_key", unique=True)
        self._db[INFERENCE_LOGS_COLLECTION].create_index("time")
        self._indexed = True

    # -- users ---------------------------------------------------------------------------------
    @_owned
    def get_or_create_user(self, full_name: str) -> tuple[UserDocument, bool]:
        """Find a user by full name (case-insensitive), creating it if needed."""
        self.ensure_indexes()
        user = UserDocument.from_full_name(full_name)
        row = self._db[USERS_COLLECTION].find_one({"_id": user.id})
        if row:
            return UserDocument.from_mongo(row), False
        self.upsert_user(user)
        return user, True

    @_owned
    def upsert_user(self, user: UserDocument) -> Outcome:
        self.ensure_indexes()
        row = {**user.to_mongo(), "full_name_key": user.full_name.casefold()}
        existing = self._db[USERS_COLLECTION].find_one({"_id": user.id})
        if existing is not None and {k: existing.get(k) for k in row} == row:
            return Outcome.UNCHANGED
        self._db[USERS_COLLECTION].replace_one({"_id": user.id}, row, upsert=True)
        return Outcome.UPDATED if existing else Outcome.CREATED

    @_owned
    def find_user(self, full_name: str) -> UserDocument | None:
        key = normalize_full_name(full_name).casefold()
        row = self._db[USERS_COLLECTION].find_one({"full_name_key": key})
        return UserDocument.from_mongo(row) if row else None

    @_owned
    def get_user(self, user_id: str) -> UserDocument | None:
        row = self._db[USERS_COLLECTION].find_one({"_id": user_id})
        return UserDocument.from_mongo(row) if row else None

    @_owned
    def users(self) -> list[UserDocument]:
        return [UserDocument.from_mongo(r) for r in self._db[USERS_COLLECTION].find({}).sort("_id")]

    # -- documents -----------------------------------------------------------------------------
    @_owned
    def upsert_document(self, doc: RawDocument, *, touch: bool = True, pending: bool = False) -> Outcome:
        """Insert, update (content hash changed) or, if unchanged, only touch ``checked_at``.

        With ``pending`` (a crawl) a created or updated document keeps its outcome in the same write
        (``PENDING_FIELD``) until a validation that has seen it settles it (``settle_documents``): every crawl
        before then reports it ``created``/``updated`` again, not ``unchanged`` (which would leave it
        unvalidated and unfeaturized when the report that said so was lost: a killed crawl, a lost XCom)."""
        self.ensure_indexes()
        col = self._db[doc.category.collection]
        existing = col.find_one({"_id": doc.id}, {"content_hash": 1, PENDING_FIELD: 1})
        waiting = (existing or {}).get(PENDING_FIELD)
        earlier = waiting if pending else None
        if existing and existing.get("content_hash") == doc.content_hash:
            if touch:
                col.update_one({"_id": doc.id}, {"$set": {"checked_at": utcnow()}})
            return Outcome(earlier) if earlier else Outcome.UNCHANGED
        outcome = Outcome(earlier) if earlier else Outcome.UPDATED if existing else Outcome.CREATED
        row = doc.to_mongo()
        if pending:
            row[PENDING_FIELD] = outcome.value
        elif waiting:  # an import replacing a crawled document no validation has seen: it still needs one
            row[PENDING_FIELD] = waiting
        col.replace_one({"_id": doc.id}, row, upsert=True)
        return outcome

    @_owned
    def pending_documents(self, category: Category, ids: Iterable[str] | None = None) -> dict[str, str]:
        """id -> content hash of the documents of ``category`` (only ``ids``, when given) that a crawl stored
        created or updated and that no validation has settled yet (quarantined ones too)."""
        query: dict[str, Any] = {PENDING_FIELD: {"$exists": True}}
        if ids is not None:
            query["_id"] = {"$in": list(ids)}
        rows = self._db[category.collection].find(query, {"content_hash": 1})
        return {str(row["_id"]): row.get("content_hash", "") for row in rows}

    @_owned
    def settle_documents(self, category: Category, seen: dict[str, str]) -> int:
        """Forget the pending outcome of the documents a validation has seen (``seen``: id -> the content hash
        it read, from ``pending_documents``): a later crawl finds them unchanged. One replaced since by a
        crawl (another content hash) stays pending: its new content is not validated yet. Returns how many."""
        col = self._db[category.collection]
        settled = 0
        for doc_id, content_hash in seen.items():  # one atomic write each: hash and pending checked in the filter
            query = {"_id": doc_id, "content_hash": content_hash, PENDING_FIELD: {"$exists": True}}
            settled += col.update_one(query, {"$unset": {PENDING_FIELD: ""}}).modified_count
        return settled

    def upsert_documents(self, docs: Iterable[RawDocument]) -> UpsertReport:
        report = UpsertReport()
        for doc in docs:
            report.add(self.upsert_document(doc))
        return report

    @_owned
    def get_document(self, category: Category, doc_id: str) -> RawDocument | None:
        row = self._db[category.collection].find_one({"_id": doc_id})
        return document_class(category).from_mongo(row) if row else None

    @_owned
    def find_by_link(self, link: str) -> RawDocument | None:
        for cat in Category:
            row = self._db[cat.collection].find_one({"link": link})
            if row:
                return document_class(cat).from_mongo(row)
        return None

    @_owned
    def find(
        self,
        category: Category,
        query: dict[str, Any] | None = None,
        *,
        skip: int = 0,
        limit: int = 100,
        include_quarantined: bool = False,
    ) -> list[RawDocument]:
        """One page of documents, ordered by id (stable pagination)."""
        q = dict(query or {})
        if not include_quarantined:
            q["quarantined"] = {"$ne": True}
        cursor = self._db[category.collection].find(q).sort("_id").skip(skip).limit(limit)
        cls = document_class(category)
        return [cls.from_mongo(r) for r in cursor]

    def iter_documents(
        self,
        category: Category,
        query: dict[str, Any] | None = None,
        *,
        batch_size: int = 200,
        include_quarantined: bool = False,
    ) -> Iterator[RawDocument]:
        """All matching documents, fetched page by page."""
        skip = 0
        while True:
            page = self.find(category, query, skip=skip, limit=batch_size, include_quarantined=include_quarantined)
            yield from page
            if len(page) < batch_size:
                return
            skip += batch_size

    @_owned
    def count(self, category: Category, query: dict[str, Any] | None = None) -> int:
        return self._db[category.collection].count_documents(query or {})

    @_owned
    def set_quarantine(self, category: Category, doc_id: str, reasons: list[str]) -> None:
        self._db[category.collection].update_one(
            {"_id": doc_id}, {"$set": {"quarantined": bool(reasons), "quarantine_reasons": reasons}}
        )

    @_owned
    def document_links(self, category: Category, author_id: str) -> dict[str, str]:
        """document id -> link of the author's documents of ``category`` (quarantined ones too)."""
        rows = self._db[category.collection].find({"author_id": author_id}, {"link": 1})
        return {row["_id"]: row["link"] for row in rows}

    @_owned
    def delete_document(self, category: Category, doc_id: str) -> bool:
        return self._db[category.collection].delete_one({"_id": doc_id}).deleted_count == 1

    @_owned
    def content_hashes(
        self, author_id: str | None = None, *, include_quarantined: bool = False
    ) -> dict[str, tuple[Category, str]]:
        """document id -> (category, content hash) of every document (only ids and hashes are read)."""
        query: dict[str, Any] = {} if include_quarantined else {"quarantined": {"$ne": True}}
        if author_id:
            query["author_id"] = author_id
        out: dict[str, tuple[Category, str]] = {}
        for cat in Category:
            for row in self._db[cat.collection].find(query, {"content_hash": 1}):
                out[str(row["_id"])] = (cat, row.get("content_hash", ""))
        return out

    @_owned
    def documents_by_id(self, category: Category, ids: Iterable[str]) -> list[RawDocument]:
        """The documents of ``category`` with these ids (missing ids are skipped), ordered by id."""
        ids = list(ids)
        if not ids:
            return []
        cls = document_class(category)
        return [cls.from_mongo(r) for r in self._db[category.collection].find({"_id": {"$in": ids}}).sort("_id")]

    @_owned
    def stats(self) -> dict[str, Any]:
        """Counts per category and per author (quarantined counted apart)."""
        users = {u.id: u.full_name for u in self.users()}
        per_author: dict[str, dict[str, int]] = {}
        categories: dict[str, dict[str, int]] = {}
        for cat in Category:
            col = self._db[cat.collection]
            total = col.count_documents({})
            quarantined = col.count_documents({"quarantined": True})
            categories[cat.value] = {"total": total, "quarantined": quarantined}
            for row in col.find({}, {"author_id": 1, "author_full_name": 1}):
                name = users.get(row.get("author_id"), row.get("author_full_name", "?"))
                per_author.setdefault(name, {c.value: 0 for c in Category})[cat.value] += 1
        return {"users": len(users), "categories": categories, "authors": per_author}

    # -- inference request log -----------------------------------------------------------------
    @_owned
    def append_inference_log(self, row: InferenceLog) -> None:
        """Append one request log row (its ``id`` is unique: appending it twice raises)."""
        self.ensure_indexes()
        self._db[INFERENCE_LOGS_COLLECTION].insert_one(row.to_mongo())

    def inference_logs(
        self,
        start: datetime | None = None,
        end: datetime | None = None,
        author: str | None = None,
        model_version: str | None = None,
        *,
        batch_size: int = 500,
    ) -> Iterator[InferenceLog]:
        """Request log rows in time order: ``start <= time < end``; ``author`` is a full name or an
        author id; ``model_version`` an exact match. Fetched page by page. A stored row that is not an
        ``InferenceLog`` raises ``UnreadableLogRow`` (a ``ValueError``) naming its ``_id`` (``row_id``)."""
        query: dict[str, Any] = {}
        if start is not None or end is not None:
            query["time"] = {
                **({"$gte": start} if start is not None else {}),
                **({"$lt": end} if end is not None else {}),
            }
        if author is not None:
            query["$or"] = [
                {"author": normalize_full_name(author)},
                {"author_id": {"$in": [author, user_id(author)]}},  # an id, or the name in any case
            ]
        if model_version is not None:
            query["model_version"] = model_version
        skip = 0
        while True:
            page = self._inference_log_page(query, skip, batch_size)
            yield from (InferenceLog.from_mongo(r) for r in page)
            if len(page) < batch_size:
                return
            skip += batch_size

    @_owned
    def _inference_log_page(self, query: dict[str, Any], skip: int, limit: int) -> list[dict[str, Any]]:
        cursor = self._db[INFERENCE_LOGS_COLLECTION].find(query).sort([("time", 1), ("_id", 1)])
        return list(cursor.skip(skip).limit(limit))


def open_warehouse(settings: Settings) -> Warehouse:
    """MongoDB when ``TWIN_MONGODB_URI`` is set (thread-safe client), else the embedded litemongo,
    opened on (and thereafter only used from) a dedicated thread."""
    from twin_core.stores.mongo import open_database

    if settings.mongodb_uri:
        return Warehouse(open_database(settings))
    owner = OwnerThread("warehouse")
    try:
        return Warehouse(owner.run(open_database, settings), owner)
    except BaseException:
        owner.close()
        raise
