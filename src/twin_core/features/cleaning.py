"""Cleaning handlers, one per category, behind one dispatcher: raw document -> cleaned document.

A document that has nothing left after cleaning (empty, only emoji/URLs, only binary files) raises
``EmptyAfterCleaning``; the pipeline reports it as skipped and removes any stale features it had.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import PurePosixPath

from twin_core.domain.documents import Category, RawDocument
from twin_core.domain.features import CleanedDocument, SourceRef
from twin_core.errors import InputError
from twin_core.features.text_cleaning import clean_code, clean_prose, looks_binary

# content keys that are metadata, not the author's words
META_KEYS = {"language", "lang", "image", "images", "url", "link", "platform", "author", "published_at", "tags"}
# preferred order of the text fields of articles and posts
TEXT_KEYS_FIRST = ("Title", "title", "Subtitle", "subtitle", "Content", "content", "text")
BINARY_SUFFIXES = {
    ".png", ".jpg", ".jpeg", ".gif", ".ico", ".pdf", ".zip", ".gz", ".tar", ".whl", ".so", ".dll", ".exe",
    ".bin", ".pt", ".safetensors", ".onnx", ".parquet", ".woff", ".woff2", ".ttf", ".pyc", ".lock", ".svg",
}  # fmt: skip
CLEANING_VERSION = "1"


class EmptyAfterCleaning(InputError):
    """The document holds no text once cleaned."""


def _text_fields(content: dict) -> list[str]:
    keys = [k for k in TEXT_KEYS_FIRST if k in content]
    keys += sorted(k for k in content if k not in keys and k.lower() not in META_KEYS)
    return [content[k] for k in keys if isinstance(content[k], str) and content[k].strip()]


def _base(doc: RawDocument, content: str, metadata: dict) -> CleanedDocument:
    return CleanedDocument(
        id=doc.id,
        **SourceRef.fields_of(doc),
        content=content,
        raw_content_hash=doc.content_hash,
        metadata=metadata,
    )


def clean_prose_document(doc: RawDocument, pii_policy: str, max_file_bytes: int) -> CleanedDocument:
    """Articles and posts: title, subtitle and body as paragraphs."""
    parts = [clean_prose(field, pii_policy=pii_policy) for field in _text_fields(doc.content)]
    text = "\n\n".join(p for p in parts if p)
    if not text:
        raise EmptyAfterCleaning(f"{doc.link}: no text left after cleaning (empty, or only emoji/URLs/boilerplate)")
    metadata = {"title": doc.content.get("Title") or doc.content.get("title")}
    return _base(doc, text, {k: v for k, v in metadata.items() if v})


def clean_repository_document(doc: RawDocument, pii_policy: str, max_file_bytes: int) -> CleanedDocument:
    """Repositories: one section ``# path`` + code per text file; binary, huge and empty files are skipped."""
    sections: list[str] = []
    files: list[list] = []  # [path, start, end] character span of each file section in the cleaned text
    skipped: dict[str, str] = {}
    offset = 0
    for path, code in sorted(doc.content.items()):
        if not isinstance(code, str):
            skipped[path] = "not text"
            continue
        if PurePosixPath(path).suffix.lower() in BINARY_SUFFIXES or looks_binary(code):
            skipped[path] = "binary"
            continue
        if len(code.encode("utf-8", "replace")) > max_file_bytes:
            skipped[path] = f"larger than {max_file_bytes} bytes"
            continue
        body = clean_code(code, pii_policy=pii_policy)
        if not body.strip():
            skipped[path] = "empty"
            continue
        section = f"# {path}\n{body}"
        if sections:
            offset += 2  # the "\n\n" separator
        files.append([path, offset, offset + len(section)])
        sections.append(section)
        offset += len(section)
    if not sections:
        raise EmptyAfterCleaning(f"{doc.link}: no text file left after cleaning (skipped: {skipped or 'none'})")
    metadata = {"files": files, "skipped_files": skipped, "name": getattr(doc, "name", "")}
    return _base(doc, "\n\n".join(sections), metadata)


HANDLERS: dict[Category, Callable[[RawDocument, str, int], CleanedDocument]] = {
    Category.ARTICLES: clean_prose_document,
    Category.POSTS: clean_prose_document,
    Category.REPOSITORIES: clean_repository_document,
}


def clean_document(doc: RawDocument, *, pii_policy: str = "redact", max_file_bytes: int = 200_000) -> CleanedDocument:
    """Dispatch ``doc`` to the handler of its category."""
    return HANDLERS[doc.category](doc, pii_policy, max_file_bytes)
