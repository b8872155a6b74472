"""The data warehouse: users and raw documents, one collection per category.

Built on the pymongo ``Database`` API only, so MongoDB and the embedded litemongo behave alike.
Every write is an upsert keyed by a deterministic id, and a content hash decides whether anything
changed, so re-running a step never duplicates data.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
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
from twin_core.domain.ids import normalize_full_name
from twin_core.settings import Settings


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
    """Repository over a pymongo ``Database``."""

    def __init__(self, db: Any) -> None:
        self.db = db
        self._indexed = False

    # -- setup ---------------------------------------------------------------------------------
    def ensure_indexes(self) -> None:
        if self._indexed:
            return
        for cat in Category:
            col = self.db[cat.collection]
            col.create_index("link", unique=True)
            col.create_index("author_id")
        self.db[USERS_COLLECTION].create_index("full_name_key", unique=True)
        self._indexed = True

    # -- users ---------------------------------------------------------------------------------
    def get_or_create_user(self, full_name: str) -> tuple[UserDocument, bool]:
        """Find a user by full name (case-insensitive), creating it if needed."""
        self.ensure_indexes()
        user = UserDocument.from_full_name(full_name)
        row = self.db[USERS_COLLECTION].find_one({"_id": user.id})
        if row:
            return UserDocument.from_mongo(row), False
        self.upsert_user(user)
        return user, True

    def upsert_user(self, user: UserDocument) -> Outcome:
        self.ensure_indexes()
        row = {**user.to_mongo(), "full_name_key": user.full_name.casefold()}
        existing = self.db[USERS_COLLECTION].find_one({"_id": user.id})
        if existing is not None and {k: existing.get(k) for k in row} == row:
            return Outcome.UNCHANGED
        self.db[USERS_COLLECTION].replace_one({"_id": user.id}, row, upsert=True)
        return Outcome.UPDATED if existing else Outcome.CREATED

    def find_user(self, full_name: str) -> UserDocument | None:
        key = normalize_full_name(full_name).casefold()
        row = self.db[USERS_COLLECTION].find_one({"full_name_key": key})
        return UserDocument.from_mongo(row) if row else None

    def get_user(self, user_id: str) -> UserDocument | None:
        row = self.db[USERS_COLLECTION].find_one({"_id": user_id})
        return UserDocument.from_mongo(row) if row else None

    def users(self) -> list[UserDocument]:
        return [UserDocument.from_mongo(r) for r in self.db[USERS_COLLECTION].find({}).sort("_id")]

    # -- documents -----------------------------------------------------------------------------
    def upsert_document(self, doc: RawDocument, *, touch: bool = True) -> Outcome:
        """Insert, update (content hash changed) or, if unchanged, only touch ``checked_at``."""
        self.ensure_indexes()
        col = self.db[doc.category.collection]
        existing = col.find_one({"_id": doc.id}, {"content_hash": 1, "crawled_at": 1})
        if existing and existing.get("content_hash") == doc.content_hash:
            if touch:
                col.update_one({"_id": doc.id}, {"$set": {"checked_at": utcnow()}})
            return Outcome.UNCHANGED
        row = doc.to_mongo()
        col.replace_one({"_id": doc.id}, row, upsert=True)
        return Outcome.UPDATED if existing else Outcome.CREATED

    def upsert_documents(self, docs: Iterable[RawDocument]) -> UpsertReport:
        report = UpsertReport()
        for doc in docs:
            report.add(self.upsert_document(doc))
        return report

    def get_document(self, category: Category, doc_id: str) -> RawDocument | None:
        row = self.db[category.collection].find_one({"_id": doc_id})
        return document_class(category).from_mongo(row) if row else None

    def find_by_link(self, link: str) -> RawDocument | None:
        for cat in Category:
            row = self.db[cat.collection].find_one({"link": link})
            if row:
                return document_class(cat).from_mongo(row)
        return None

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
        cursor = self.db[category.collection].find(q).sort("_id").skip(skip).limit(limit)
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

    def count(self, category: Category, query: dict[str, Any] | None = None) -> int:
        return self.db[category.collection].count_documents(query or {})

    def set_quarantine(self, category: Category, doc_id: str, reasons: list[str]) -> None:
        self.db[category.collection].update_one(
            {"_id": doc_id}, {"$set": {"quarantined": bool(reasons), "quarantine_reasons": reasons}}
        )

    def delete_document(self, category: Category, doc_id: str) -> bool:
        return self.db[category.collection].delete_one({"_id": doc_id}).deleted_count == 1

    def stats(self) -> dict[str, Any]:
        """Counts per category and per author (quarantined counted apart)."""
        users = {u.id: u.full_name for u in self.users()}
        per_author: dict[str, dict[str, int]] = {}
        categories: dict[str, dict[str, int]] = {}
        for cat in Category:
            col = self.db[cat.collection]
            total = col.count_documents({})
            quarantined = col.count_documents({"quarantined": True})
            categories[cat.value] = {"total": total, "quarantined": quarantined}
            for row in col.find({}, {"author_id": 1, "author_full_name": 1}):
                name = users.get(row.get("author_id"), row.get("author_full_name", "?"))
                per_author.setdefault(name, {c.value: 0 for c in Category})[cat.value] += 1
        return {"users": len(users), "categories": categories, "authors": per_author}


def open_warehouse(settings: Settings) -> Warehouse:
    from twin_core.stores.mongo import open_database

    return Warehouse(open_database(settings))
