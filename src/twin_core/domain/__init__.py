"""Domain models: users, raw documents, cleaned documents, chunks and embedded chunks."""

from twin_core.domain.documents import (
    ArticleDocument,
    Category,
    PostDocument,
    RawDocument,
    RepositoryDocument,
    UserDocument,
    document_class,
)
from twin_core.domain.features import Chunk, CleanedDocument, EmbeddedChunk
from twin_core.domain.ids import content_hash, document_id, slugify, user_id

__all__ = [
    "ArticleDocument",
    "Category",
    "Chunk",
    "CleanedDocument",
    "EmbeddedChunk",
    "PostDocument",
    "RawDocument",
    "RepositoryDocument",
    "UserDocument",
    "content_hash",
    "document_class",
    "document_id",
    "slugify",
    "user_id",
]
