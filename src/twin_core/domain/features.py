"""Feature-store records: cleaned documents, chunks and embedded chunks."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field

from twin_core.domain.documents import Category


class SourceRef(BaseModel):
    """Where a feature record comes from: kept on every record so results can cite their source."""

    category: Category
    platform: str
    link: str
    author_id: str
    author_full_name: str

    @classmethod
    def fields_of(cls, obj: Any) -> dict[str, Any]:
        """The source fields of any record that has them (a raw document, a cleaned document...)."""
        return {name: getattr(obj, name) for name in SourceRef.model_fields}


class CleanedDocument(SourceRef):
    id: str  # same id as the raw document
    content: str
    raw_content_hash: str  # hash of the raw content this was cleaned from
    metadata: dict[str, Any] = Field(default_factory=dict)


class Chunk(SourceRef):
    id: str  # ids.chunk_id(document_id, chunk_index, content_hash)
    document_id: str
    chunk_index: int
    content: str
    content_hash: str
    token_count: int = 0
    metadata: dict[str, Any] = Field(default_factory=dict)


class EmbeddedChunk(Chunk):
    embedding: list[float]
    model_id: str
    dim: int
