"""Raw documents as stored in the warehouse, binned by category (not by platform)."""

from __future__ import annotations

from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict, Field, model_validator

from twin_core.domain.ids import content_hash, document_id, normalize_full_name, user_id
from twin_core.errors import InputError


def utcnow() -> datetime:
    return datetime.now(UTC).replace(microsecond=0)


class Category(StrEnum):
    ARTICLES = "articles"
    POSTS = "posts"
    REPOSITORIES = "repositories"

    @property
    def collection(self) -> str:
        """Warehouse collection holding this category."""
        return self.value

    @classmethod
    def parse(cls, value: str) -> Category:
        aliases = {
            "article": cls.ARTICLES,
            "post": cls.POSTS,
            "repository": cls.REPOSITORIES,
            "repo": cls.REPOSITORIES,
        }
        key = value.strip().lower()
        if key in aliases:
            return aliases[key]
        try:
            return cls(key)
        except ValueError:
            known = ", ".join(c.value for c in cls)
            raise InputError(f"unknown category {value!r} (known: {known})") from None


USERS_COLLECTION = "users"


class UserDocument(BaseModel):
    model_config = ConfigDict(frozen=True)

    id: str
    first_name: str
    last_name: str

    @property
    def full_name(self) -> str:
        return normalize_full_name(f"{self.first_name} {self.last_name}")

    @classmethod
    def from_full_name(cls, full_name: str) -> UserDocument:
        name = normalize_full_name(full_name)
        if not name:
            raise InputError("user full name is empty")
        first, _, last = name.partition(" ")
        return cls(id=user_id(name), first_name=first, last_name=last)

    def to_mongo(self) -> dict[str, Any]:
        return {
            "_id": self.id,
            "first_name": self.first_name,
            "last_name": self.last_name,
            "full_name": self.full_name,
        }

    @classmethod
    def from_mongo(cls, row: dict[str, Any]) -> UserDocument:
        return cls(id=row["_id"], first_name=row["first_name"], last_name=row.get("last_name", ""))


class RawDocument(BaseModel):
    """A crawled document. ``content`` is a dict (e.g. Title/Subtitle/Content/language)."""

    category: ClassVar[Category]

    id: str = ""
    link: str
    platform: str
    author_id: str
    author_full_name: str
    content: dict[str, Any]
    content_hash: str = ""
    crawled_at: datetime = Field(default_factory=utcnow)
    checked_at: datetime = Field(default_factory=utcnow)
    published_at: datetime | None = None
    quarantined: bool = False
    quarantine_reasons: list[str] = Field(default_factory=list)

    @model_validator(mode="after")
    def _derive_ids(self) -> RawDocument:
        if not self.link.strip():
            raise ValueError("link is empty")
        if not self.id:
            self.id = document_id(self.link)
        self.content_hash = content_hash(self.content)
        return self

    @property
    def text(self) -> str:
        """All textual content joined, for validation and cleaning."""
        return "\n\n".join(str(v) for v in self.content.values() if isinstance(v, str) and v.strip())

    def to_mongo(self) -> dict[str, Any]:
        row = self.model_dump(mode="python", exclude={"id"})
        row["_id"] = self.id
        row["category"] = self.category.value
        return row

    @classmethod
    def from_mongo(cls, row: dict[str, Any]) -> RawDocument:
        data = {k: v for k, v in row.items() if k not in ("_id", "category")}
        return cls(id=row["_id"], **data)


class ArticleDocument(RawDocument):
    category: ClassVar[Category] = Category.ARTICLES


class PostDocument(RawDocument):
    category: ClassVar[Category] = Category.POSTS
    image: str | None = None


class RepositoryDocument(RawDocument):
    category: ClassVar[Category] = Category.REPOSITORIES
    name: str = ""

    @property
    def text(self) -> str:
        # content maps file path -> file text; keep code intact, just label each file.
        return "\n\n".join(f"# {path}\n{code}" for path, code in sorted(self.content.items()) if isinstance(code, str))


_CLASSES: dict[Category, type[RawDocument]] = {
    Category.ARTICLES: ArticleDocument,
    Category.POSTS: PostDocument,
    Category.REPOSITORIES: RepositoryDocument,
}


def document_class(category: Category | str) -> type[RawDocument]:
    cat = category if isinstance(category, Category) else Category.parse(category)
    return _CLASSES[cat]
