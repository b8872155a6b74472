"""The vector store (feature store): Qdrant server by URL, or qdrant-client local mode on disk.

Local mode keeps a lock on its folder: one process at a time may open it (a second gets a clear
error). Collections come in two kinds, as in the reference design: ``cleaned_*`` (payload only, no
vectors) and ``embedded_*`` (cosine vectors plus payload indexes).

Callers see only this module's own types: ``VectorPoint`` in (upsert) and out (scroll), ``VectorQuery``
in and ``VectorHit`` out of a search; Qdrant's record and point classes never leave ``stores/``.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from twin_core.errors import BackendUnavailable, ConfigError
from twin_core.settings import Settings
from twin_core.stores.embedded import refuse_in_pod

log = logging.getLogger(__name__)

PAYLOAD_INDEXES = ("author_id", "category", "platform", "document_id")


@dataclass(frozen=True)
class VectorPoint:
    """A stored point: its id, its payload and, in a vector collection, its vector."""

    id: str
    payload: dict[str, Any] = field(default_factory=dict)
    vector: list[float] | None = None  # None: a payload-only point, or vectors not asked for


@dataclass(frozen=True)
class VectorHit:
    """A search result: a point with its cosine similarity to the query (higher is closer)."""

    id: str
    score: float
    payload: dict[str, Any] = field(default_factory=dict)
    vector: list[float] | None = None  # only when asked for


@dataclass(frozen=True)
class VectorQuery:
    """One query of a batched search: a vector and its own exact payload matches (a list value
    means "any of")."""

    vector: Sequence[float]
    match: dict[str, Any] = field(default_factory=dict)


def _struct(point: VectorPoint) -> Any:
    from qdrant_client import models

    vector = {} if point.vector is None else [float(v) for v in point.vector]
    return models.PointStruct(id=point.id, vector=vector, payload=point.payload)


def _vector(record: Any) -> list[float] | None:
    return list(record.vector) if isinstance(record.vector, list) else None


def open_qdrant(settings: Settings) -> Any:
    """Return a connected ``QdrantClient``."""
    from qdrant_client import QdrantClient

    if settings.qdrant_url:
        api_key = settings.qdrant_api_key.get_secret_value() if settings.qdrant_api_key else None
        client = QdrantClient(
            url=settings.qdrant_url, api_key=api_key, timeout=settings.qdrant_timeout_s, check_compatibility=False
        )
        try:
            client.get_collections()
        except Exception as exc:  # httpx / grpc errors vary by transport
            raise BackendUnavailable(
                f"Qdrant at {settings.qdrant_url} unreachable (TWIN_QDRANT_URL): {type(exc).__name__}"
            ) from None
        return client
    refuse_in_pod(settings, "TWIN_QDRANT_URL")  # kubernetes mode: a pod's TWIN_HOME is deleted with it
    path = settings.qdrant_path
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigError(f"TWIN_HOME: cannot create the embedded vector store at {path}: {exc.strerror}") from None
    try:
        return QdrantClient(path=str(path))
    except RuntimeError as exc:  # "Storage folder ... is already accessed by another instance"
        raise BackendUnavailable(
            f"embedded Qdrant at {path} is in use by another process; stop it or set TWIN_QDRANT_URL ({exc})"
        ) from None


class VectorStore:
    """Thin, typed helpers over ``QdrantClient`` used by the feature and inference stages."""

    def __init__(self, client: Any) -> None:
        self.client = client

    def close(self) -> None:
        self.client.close()

    def has_collection(self, name: str) -> bool:
        return self.client.collection_exists(name)

    def ensure_collection(self, name: str, dim: int | None, *, metadata: dict[str, Any] | None = None) -> None:
        """Create ``name`` if missing: with cosine vectors of ``dim``, or payload-only if ``dim`` is None;
        then its payload indexes that are missing (a run killed between the two left some out)."""
        from qdrant_client import models

        if self.client.collection_exists(name):
            have = set(self.client.get_collection(name).payload_schema or {})
        else:
            vectors = models.VectorParams(size=dim, distance=models.Distance.COSINE) if dim else {}
            self.client.create_collection(name, vectors_config=vectors, metadata=metadata)
            have = set()
        with warnings.catch_warnings():  # local mode warns that it ignores payload indexes
            warnings.simplefilter("ignore", UserWarning)
            for field_name in PAYLOAD_INDEXES:
                if field_name not in have:
                    self.client.create_payload_index(name, field_name, models.PayloadSchemaType.KEYWORD)

    def collection_metadata(self, name: str) -> dict[str, Any]:
        info = self.client.get_collection(name)
        return dict(getattr(info.config, "metadata", None) or {})

    def upsert(self, name: str, points: Sequence[VectorPoint], *, batch_size: int = 256) -> int:
        for start in range(0, len(points), batch_size):
            batch = [_struct(p) for p in points[start : start + batch_size]]
            self.client.upsert(name, points=batch, wait=True)
        return len(points)

    def drop_collection(self, name: str) -> None:
        self.client.delete_collection(name)

    def delete_where(
        self,
        name: str,
        *,
        keep_ids: Sequence[str] | None = None,
        exclude: dict[str, Any] | None = None,
        **match: Any,
    ) -> None:
        """Delete the points matching every ``key=value`` of ``match`` (a list value means "any of"),
        except those in ``keep_ids`` and those matching any ``key=value`` of ``exclude``.
        No condition at all deletes every point."""
        from qdrant_client import models

        must_not: list[Any] = [models.HasIdCondition(has_id=list(keep_ids))] if keep_ids else []
        must_not += _conditions(**(exclude or {}))
        selector = models.Filter(must=_conditions(**match), must_not=must_not or None)
        with warnings.catch_warnings():  # local mode warns about unindexed payload fields
            warnings.simplefilter("ignore", UserWarning)
            self.client.delete(name, points_selector=selector, wait=True)

    def delete_ids(self, name: str, ids: Sequence[str]) -> None:
        from qdrant_client import models

        if ids:
            self.client.delete(name, points_selector=models.PointIdsList(points=list(ids)), wait=True)

    def count(self, name: str, **match: Any) -> int:
        if not self.client.collection_exists(name):
            return 0
        return self.client.count(name, count_filter=_filter(**match) if match else None, exact=True).count

    def scroll(
        self, name: str, *, with_vectors: bool = False, batch_size: int = 256, **match: Any
    ) -> Iterator[VectorPoint]:
        """Every point of ``name`` (optionally filtered by exact payload matches)."""
        if not self.client.collection_exists(name):
            return
        offset = None
        while True:
            points, offset = self.client.scroll(
                name,
                scroll_filter=_filter(**match) if match else None,
                limit=batch_size,
                offset=offset,
                with_payload=True,
                with_vectors=with_vectors,
            )
            for record in points:
                yield VectorPoint(str(record.id), dict(record.payload or {}), _vector(record))
            if offset is None:
                return

    def search(
        self, name: str, vector: Sequence[float], limit: int, *, with_vectors: bool = False, **match: Any
    ) -> list[VectorHit]:
        """The ``limit`` points closest to ``vector`` (scored, with payload), filtered by exact matches."""
        return self.search_batch(name, [VectorQuery(vector, match)], limit, with_vectors=with_vectors)[0]

    def search_batch(
        self, name: str, queries: Sequence[VectorQuery], limit: int, *, with_vectors: bool = False
    ) -> list[list[VectorHit]]:
        """``search`` for several queries in one request to the store (one result list per query, in
        order): concurrent RAG requests share one round trip instead of one each."""
        from qdrant_client import models

        if not queries:
            return []
        requests = [
            models.QueryRequest(
                query=[float(x) for x in q.vector],
                filter=_filter(**q.match) if q.match else None,
                limit=limit,
                with_payload=True,
                with_vector=with_vectors,
            )
            for q in queries
        ]
        responses = self.client.query_batch_points(name, requests=requests)
        return [
            [VectorHit(str(p.id), float(p.score), dict(p.payload or {}), _vector(p)) for p in res.points]
            for res in responses
        ]


def _conditions(**match: Any) -> list[Any]:
    """One Qdrant condition per ``key == value`` (a list value means "any of"; None is skipped)."""
    from qdrant_client import models

    out: list[Any] = []
    for key, value in match.items():
        if value is None:
            continue
        if isinstance(value, list | tuple | set):
            out.append(models.FieldCondition(key=key, match=models.MatchAny(any=list(value))))
        else:
            out.append(models.FieldCondition(key=key, match=models.MatchValue(value=value)))
    return out


def _filter(**match: Any) -> Any:
    """A Qdrant filter requiring every ``key == value`` (a list value means "any of")."""
    from qdrant_client import models

    return models.Filter(must=_conditions(**match))


def open_vector_store(settings: Settings) -> VectorStore:
    return VectorStore(open_qdrant(settings))
