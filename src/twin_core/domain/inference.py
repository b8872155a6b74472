"""One row of the inference request log (warehouse collection ``inference_logs``).

Written by the RAG pipeline for every request, successful or not; read by monitoring (drift),
evaluation/deploy (watch windows by ``model_version``) and serving. Everything is optional except
``id``, ``time`` and ``status``; keys this model does not know are ignored on read, so rows written
by an older or newer version stay readable. A stored row that is not one (``from_mongo``) raises
``UnreadableLogRow`` naming its ``_id``.
"""

from __future__ import annotations

import base64
import struct
import uuid
from datetime import UTC, datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

INFERENCE_LOGS_COLLECTION = "inference_logs"


class UnreadableLogRow(ValueError):
    """A stored request-log row that is not an ``InferenceLog``: ``row_id`` is its ``_id`` (None when it
    has none), ``errors()`` what is wrong, one entry per field as pydantic gives them (``loc``, ``msg``,
    ``input``). A ``ValueError``, as pydantic's ``ValidationError`` is: callers catching that still do."""

    def __init__(self, row_id: Any, errors: list[dict[str, Any]]) -> None:
        self.row_id = row_id
        self._errors = errors
        why = "; ".join(f"{'.'.join(map(str, e['loc'])) or 'row'}: {e['msg']}" for e in errors)
        super().__init__(f"request log row {row_id!r} is not readable: {why}")

    def errors(self) -> list[dict[str, Any]]:
        return list(self._errors)


class RetrievedRef(BaseModel):
    """A chunk the request retrieved (and, after reranking, kept)."""

    model_config = ConfigDict(extra="ignore")

    chunk_id: str | None = None
    score: float | None = None
    rerank_score: float | None = None
    link: str | None = None


class LatencyMs(BaseModel):
    model_config = ConfigDict(extra="ignore")

    retrieval: float | None = None
    generation: float | None = None
    total: float | None = None


class QueryEmbedding(BaseModel):
    """The query's embedding as retrieval computed it, kept so the drift check need not embed it again.
    float16, base64: about 1 KB a row for 384 dimensions (BSON doubles would take about 5 KB)."""

    model_config = ConfigDict(extra="ignore")

    model: str  # the embedding model id: a vector is reused only by a check with the same model
    f16: str

    @classmethod
    def of(cls, model: str, vector: list[float]) -> QueryEmbedding:
        return cls(model=model, f16=base64.b64encode(struct.pack(f"<{len(vector)}e", *vector)).decode("ascii"))

    def vector(self) -> list[float]:
        raw = base64.b64decode(self.f16)
        return list(struct.unpack(f"<{len(raw) // 2}e", raw))


class InferenceLog(BaseModel):
    model_config = ConfigDict(extra="ignore")

    id: str = Field(default_factory=lambda: str(uuid.uuid4()))  # stored as ``_id``
    time: datetime = Field(default_factory=lambda: datetime.now(UTC))
    status: str  # "ok" | "error" | "rejected" | "unavailable"
    request_id: str | None = None
    transport: str | None = None  # "cli" | "http"
    error: str | None = None
    query: str | None = None
    author: str | None = None  # full name
    author_id: str | None = None
    author_method: str | None = None  # how the author was chosen (api_key, named, only_author, ...)
    expanded_queries: list[str] = Field(default_factory=list)
    retrieved: list[RetrievedRef] = Field(default_factory=list)
    reranker: str | None = None
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    answer: str | None = None
    model_version: str | None = None
    served_stage: str | None = None  # "base" | "production" | "canary": which registry stage answered (serving)
    latency_ms: LatencyMs = Field(default_factory=LatencyMs)
    query_embedding: QueryEmbedding | None = None

    @field_validator("time")
    @classmethod
    def _utc(cls, value: datetime) -> datetime:
        # a store without tz support hands back naive datetimes: they were written in UTC
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)

    def to_mongo(self) -> dict[str, Any]:
        row = self.model_dump(mode="python", exclude={"id"})
        return {"_id": self.id, **row}

    @classmethod
    def from_mongo(cls, row: dict[str, Any]) -> InferenceLog:
        """The stored ``row``; one that is not a request log row raises ``UnreadableLogRow`` naming its ``_id``."""
        if not isinstance(row, dict) or "_id" not in row:
            row_id = row.get("id") if isinstance(row, dict) else None
            what = "a row without _id" if isinstance(row, dict) else f"not a document ({type(row).__name__})"
            raise UnreadableLogRow(row_id, [{"loc": ("_id",), "msg": what, "input": row_id}])
        data = {k: v for k, v in row.items() if k != "_id"}
        data["id"] = str(row["_id"])
        try:
            return cls.model_validate(data)
        except ValidationError as exc:
            errors = exc.errors(include_url=False, include_context=False)
            raise UnreadableLogRow(
                row["_id"], [{k: e[k] for k in ("loc", "msg", "input") if k in e} for e in errors]
            ) from exc
