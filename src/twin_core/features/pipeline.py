"""The feature pipeline: warehouse -> clean -> chunk -> embed -> Qdrant, incrementally.

A document is (re)featurized only when its raw content hash, or the pipeline fingerprint (cleaning
version, PII policy, chunk size/overlap, model), differs from its ``feature_state``. Documents that were
deleted or quarantined lose their features. Work is written in batches of documents, state last, so a
killed run simply redoes its unfinished batch on the next run.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from twin_core.domain.documents import Category, RawDocument
from twin_core.domain.features import Chunk, CleanedDocument, EmbeddedChunk
from twin_core.domain.ids import content_hash, slugify
from twin_core.errors import InputError
from twin_core.features import feature_store as fs
from twin_core.features.chunking import chunk_document
from twin_core.features.cleaning import CLEANING_VERSION, EmptyAfterCleaning, clean_document
from twin_core.features.embedding_model import Embedder, load_embedder, logical_model_id
from twin_core.progress import ProgressFactory, silent
from twin_core.settings import Settings
from twin_core.stores.vectors import VectorStore, open_vector_store
from twin_core.stores.warehouse import Warehouse, open_warehouse

log = logging.getLogger(__name__)


@dataclass
class RunReport:
    processed: int = 0
    unchanged: int = 0
    deleted: int = 0
    skipped: list[dict[str, str]] = field(default_factory=list)
    chunks: int = 0
    tokens: int = 0
    timings: dict[str, float] = field(default_factory=dict)

    @contextmanager
    def timed(self, name: str) -> Iterator[None]:
        started = time.perf_counter()
        try:
            yield
        finally:
            self.timings[name] = round(self.timings.get(name, 0.0) + time.perf_counter() - started, 3)


def fingerprint(settings: Settings) -> str:
    """What else, besides the raw content, decides the features of a document."""
    return content_hash(
        {
            "cleaning": CLEANING_VERSION,
            "pii": settings.features.pii_policy,
            "chunk_tokens": settings.features.chunk_tokens,
            "overlap": settings.features.chunk_overlap_tokens,
            "model": logical_model_id(settings.embedding_model_id),
        }
    )


def live_documents(warehouse: Warehouse, author_id: str | None) -> dict[str, tuple[Category, str]]:
    """id -> (category, raw content hash) of every non-quarantined document (only ids and hashes are read)."""
    return warehouse.content_hashes(author_id)


def _load_raw(warehouse: Warehouse, todo: list[tuple[str, Category]]) -> list[RawDocument]:
    docs: list[RawDocument] = []
    for cat in Category:
        docs.extend(warehouse.documents_by_id(cat, [i for i, c in todo if c == cat]))
    return docs


class FeaturePipeline:
    """One run over the warehouse (optionally one author). Call ``run()`` once."""

    def __init__(
        self,
        settings: Settings,
        warehouse: Warehouse,
        store: VectorStore,
        *,
        full: bool = False,
        author_id: str | None = None,
        embedder: Embedder | None = None,
        progress: ProgressFactory = silent,
    ) -> None:
        self.settings = settings
        self.warehouse = warehouse
        self.store = store
        self.full = full
        self.author_id = author_id
        self._embedder = embedder
        self.progress = progress
        self.fingerprint = fingerprint(settings)
        self.model_id = logical_model_id(settings.embedding_model_id)
        self.report = RunReport()

    @property
    def embedder(self) -> Embedder:
        if self._embedder is None:
            with self.report.timed("model_load"):
                self._embedder = load_embedder(self.settings)
        return self._embedder

    # -- planning ----------------------------------------------------------------------------
    def plan(self) -> list[tuple[str, Category]]:
        """Remove the features of gone documents; return the documents to (re)featurize."""
        with self.report.timed("plan"):
            for cat in Category:  # fail fast on another model, before loading anything
                name = fs.embedded_collection(cat)
                if not self.full and self.store.has_collection(name):
                    have = self.store.collection_metadata(name).get("model_id")
                    if have is not None and have != self.model_id:
                        fs.check_model(self.store, name, self.model_id)
            live = live_documents(self.warehouse, self.author_id)
            state = fs.read_state(self.store, self.author_id) if self.store.has_collection(fs.STATE_COLLECTION) else {}
            gone = [doc_id for doc_id in state if doc_id not in live]
            if gone:
                log.info("removing the features of %d deleted or quarantined documents", len(gone))
                fs.remove_documents(self.store, gone)
            if self._collections_exist():
                fs.remove_orphans(self.store, list(live), self.author_id)
            self.report.deleted = len(gone)
            todo = [
                (doc_id, cat)
                for doc_id, (cat, raw_hash) in sorted(live.items())
                if self.full
                or state.get(doc_id, {}).get("raw_content_hash") != raw_hash
                or state.get(doc_id, {}).get("fingerprint") != self.fingerprint
            ]
            self.report.unchanged = len(live) - len(todo)
        return todo

    def _collections_exist(self) -> bool:
        names = [fs.embedded_collection(c) for c in Category] + [fs.cleaned_collection(c) for c in Category]
        return all(self.store.has_collection(n) for n in [*names, fs.STATE_COLLECTION])

    # -- one batch ---------------------------------------------------------------------------
    def _clean(self, docs: list[RawDocument], bar: Any) -> list[CleanedDocument]:
        cleaned: list[CleanedDocument] = []
        with self.report.timed("clean"):
            for doc in docs:
                try:
                    cleaned.append(
                        clean_document(
                            doc,
                            pii_policy=self.settings.features.pii_policy,
                            max_file_bytes=self.settings.features.max_file_bytes,
                        )
                    )
                except EmptyAfterCleaning as exc:
                    log.warning("skipped: %s", exc)
                    self.report.skipped.append({"id": doc.id, "link": doc.link, "reason": str(exc)})
                bar.update(1)
        return cleaned

    def _chunk(self, cleaned: list[CleanedDocument]) -> dict[str, list[Chunk]]:
        with self.report.timed("chunk"):
            return {
                d.id: chunk_document(
                    d,
                    self.embedder,
                    self.settings.features.chunk_tokens,
                    self.settings.features.chunk_overlap_tokens,
                )
                for d in cleaned
            }

    def _embed(self, chunks: list[Chunk], bar: Any) -> list[EmbeddedChunk]:
        embedder = self.embedder
        out: list[EmbeddedChunk] = []
        with self.report.timed("embed"):
            step = max(self.settings.features.embed_batch_size * 4, 1)  # encode() sorts by length inside a call
            for start in range(0, len(chunks), step):
                part = chunks[start : start + step]
                vectors = embedder.encode([c.content for c in part], batch_size=self.settings.features.embed_batch_size)
                out.extend(
                    EmbeddedChunk(**c.model_dump(), embedding=v.tolist(), model_id=embedder.model_id, dim=embedder.dim)
                    for c, v in zip(part, vectors, strict=True)
                )
                bar.update(len(part))
        return out

    def _load(self, docs: list[RawDocument], cleaned: list[CleanedDocument], embedded: list[EmbeddedChunk]) -> None:
        """Chunks first, then stale chunks out, then cleaned docs, then the state: safe to kill anywhere."""
        with self.report.timed("load"):
            fs.write_chunks(self.store, embedded)
            by_doc: dict[str, list[str]] = {}
            for c in embedded:
                by_doc.setdefault(c.document_id, []).append(c.id)
            for doc in docs:
                fs.delete_other_chunks(self.store, doc.category, doc.id, by_doc.get(doc.id, []))
            kept = {d.id for d in cleaned}
            for doc in docs:  # skipped now (nothing left after cleaning): drop an older cleaned version
                if doc.id not in kept:
                    self.store.delete_ids(fs.cleaned_collection(doc.category), [doc.id])
            fs.write_cleaned(self.store, cleaned)
            skipped = {s["id"]: s["reason"] for s in self.report.skipped}
            fs.mark_done(
                self.store,
                {
                    d.id: {
                        "document_id": d.id,
                        "raw_content_hash": d.content_hash,
                        "fingerprint": self.fingerprint,
                        "category": d.category.value,
                        "author_id": d.author_id,
                        "link": d.link,
                        "chunks": len(by_doc.get(d.id, [])),
                        "skipped": skipped.get(d.id),
                    }
                    for d in docs
                },
            )

    # -- the run -----------------------------------------------------------------------------
    def run(self) -> RunReport:
        started = time.perf_counter()
        todo = self.plan()
        if todo:
            fs.ensure_collections(self.store, self.embedder.model_id, self.embedder.dim, rebuild=self.full)
            batch = self.settings.features.docs_per_batch
            clean_bar = self.progress(total=len(todo), desc="clean", unit="doc")
            embed_bar = self.progress(desc="embed", unit="chunk")
            load_bar = self.progress(total=len(todo), desc="load", unit="doc")
            try:
                for start in range(0, len(todo), batch):
                    with self.report.timed("read"):
                        docs = _load_raw(self.warehouse, todo[start : start + batch])
                    cleaned = self._clean(docs, clean_bar)
                    chunks = self._chunk(cleaned)
                    flat = [c for d in cleaned for c in chunks[d.id]]
                    embedded = self._embed(flat, embed_bar)
                    self._load(docs, cleaned, embedded)
                    load_bar.update(len(docs))
                    self.report.processed += len(docs)
                    self.report.chunks += len(flat)
                    self.report.tokens += sum(c.token_count for c in flat)
            finally:
                for bar in (clean_bar, embed_bar, load_bar):
                    bar.close()
        self.report.timings["total"] = round(time.perf_counter() - started, 3)
        return self.report

    def counts(self) -> dict[str, int]:
        match = {"author_id": self.author_id} if self.author_id else {}
        return {
            "points": sum(self.store.count(fs.embedded_collection(c), **match) for c in Category),
            "cleaned": sum(self.store.count(fs.cleaned_collection(c), **match) for c in Category),
        }


def resolve_author(warehouse: Warehouse, author: str | None) -> str | None:
    """The id of the author named by full name (any case), slug or id, as every ``--author`` takes it;
    InputError naming the known authors otherwise."""
    if not author:
        return None
    user = warehouse.find_user(author) or warehouse.get_user(author.strip())
    if user is None:  # the slug (ada-quillfeather), as registry and model refs write it
        user = next((u for u in warehouse.users() if slugify(u.full_name) == author.strip()), None)
    if user is None:
        known = ", ".join(u.full_name for u in warehouse.users()) or "none"
        raise InputError(f"no author named {author!r} in the warehouse (known: {known})")
    return user.id


def run_features(
    settings: Settings,
    *,
    full: bool = False,
    author: str | None = None,
    embedder: Embedder | None = None,
    progress: ProgressFactory = silent,
) -> dict[str, Any]:
    """Open the stores, run the pipeline, close the vector store; return the step result."""
    warehouse = open_warehouse(settings)
    author_id = resolve_author(warehouse, author)
    store = open_vector_store(settings)  # before the model: an unreachable Qdrant fails in a second
    try:
        pipe = FeaturePipeline(
            settings, warehouse, store, full=full, author_id=author_id, embedder=embedder, progress=progress
        )
        report = pipe.run()
        counts = pipe.counts()
    finally:
        store.close()
    return {
        "processed": report.processed,
        "unchanged": report.unchanged,
        "deleted": report.deleted,
        "skipped": len(report.skipped),
        "skipped_documents": report.skipped,
        "chunks": report.chunks,
        "tokens": report.tokens,
        "points": counts["points"],
        "cleaned": counts["cleaned"],
        "model_id": pipe.model_id,
        "full": full,
        "author": author,
        "timings": report.timings,
    }
