"""Feature-store records: cleaned documents, chunks and embedded chunks."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field

from twin_core.domain.documents import Category


class CleanedDocument(BaseModel):
    id: str  # same id as the raw document
    category: Category
    platform: str
    link: str
    author_id: str
    author_full_name: str
    content: str
    raw_content_hash: str  # hash of the raw content this was cleaned from
    metadata: dict[str, Any] = Field(default_factory=dict)


class Chunk(BaseModel):
    id: str  # ids.chunk_id(document_id, chunk_index, content_hash)
    document_id: str
    chunk_index: int
    category: Category
    platform: str
    link: str
    author_id: str
    author_full_name: str
    content: str
    content_hash: str
    token_count: int = 0
    metadata: dict[str, Any] = Field(default_factory=dict)


class EmbeddedChunk(Chunk):
    embedding: list[float]
    model_id: str
    dim: int
