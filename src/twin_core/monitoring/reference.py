"""What a window is compared with.

- **training**: the instructions (and answers) of the latest instruct dataset version of each author
  (CONTRACTS §2: ``datasets/instruct/<author_slug>/vNNNN/train.parquet`` in the artifact store);
- **previous**: the request log of the window(s) right before;
- **documents**: the raw documents the model was trained on (the dataset's ``document_id``s).

Read through the artifact store and the warehouse only (the datasets package sits above monitoring).
"""

from __future__ import annotations

import io
import logging
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from twin_core.domain.documents import Category, RawDocument
from twin_core.domain.ids import slugify

log = logging.getLogger(__name__)

INSTRUCT_PREFIX = "datasets/instruct"


@dataclass
class TrainingReference:
    versions: list[str] = field(default_factory=list)  # "instruct/<slug>/vNNNN"
    queries: list[str] = field(default_factory=list)
    answers: list[str] = field(default_factory=list)
    document_ids: set[str] = field(default_factory=set)


def instruct_slugs(artifacts: Any) -> list[str]:
    slugs = set()
    for key in artifacts.list(INSTRUCT_PREFIX):
        parts = key.split("/")
        if len(parts) >= 4:
            slugs.add(parts[2])
    return sorted(slugs)


def training_reference(artifacts: Any, author: str | None) -> TrainingReference:
    """The latest instruct version of ``author`` (or of every author); empty when there is none."""
    import pandas as pd

    ref = TrainingReference()
    slugs = [slugify(author)] if author else instruct_slugs(artifacts)
    for slug in slugs:
        name = f"{INSTRUCT_PREFIX}/{slug}"
        versions = artifacts.versions(name)
        if not versions:
            continue
        version = versions[-1]
        frames = []
        for split in ("train", "test"):
            try:
                frames.append(
                    pd.read_parquet(
                        io.BytesIO(artifacts.read_version_file(name, version, f"{split}.parquet")),
                        use_threads=False,  # no Arrow pool left to abort the exit (see datasets.versions)
                        pre_buffer=False,
                    )
                )
            except Exception as exc:  # a version without a test split is fine; say which file was missing
                log.debug("reference %s/%s: no %s split (%s)", name, version, split, exc)
        if not frames:
            continue
        rows = pd.concat(frames, ignore_index=True)
        ref.versions.append(f"instruct/{slug}/{version}")
        train = frames[0]
        ref.queries += [str(q) for q in train.get("instruction", pd.Series(dtype=str)).dropna()]
        ref.answers += [str(a) for a in train.get("answer", pd.Series(dtype=str)).dropna()]
        ref.document_ids |= {str(d) for d in rows.get("document_id", pd.Series(dtype=str)).dropna()}
    return ref


def documents(
    warehouse: Any,
    *,
    ids: set[str] | None = None,
    crawled: tuple[datetime, datetime] | None = None,
    author: str | None = None,
    exclude: set[str] | None = None,
    limit: int = 5000,
) -> list[RawDocument]:
    """Raw documents by id, or collected in ``[start, end)``; quarantined ones are left out."""
    query: dict[str, Any] = {}
    if ids is not None:
        if not ids:
            return []
        query["_id"] = {"$in": sorted(ids)}
    if crawled is not None:
        query["crawled_at"] = {"$gte": crawled[0], "$lt": crawled[1]}
    if author:
        user = warehouse.find_user(author)
        if user is None:
            return []
        query["author_id"] = user.id
    out: list[RawDocument] = []
    for category in Category:
        for doc in warehouse.iter_documents(category, query):
            if exclude and doc.id in exclude:
                continue
            out.append(doc)
            if len(out) >= limit:
                return out
    return out
