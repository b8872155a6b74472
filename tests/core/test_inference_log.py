"""The inference log row (domain model) and its warehouse methods."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from pydantic import ValidationError

from twin_core.domain.ids import user_id
from twin_core.domain.inference import InferenceLog, LatencyMs, RetrievedRef
from twin_core.inference.request_log import RequestLog

T0 = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)


def _row(minutes: int, **kw: Any) -> InferenceLog:
    return InferenceLog(time=T0 + timedelta(minutes=minutes), status="ok", **kw)


def test_round_trip_keeps_every_field(warehouse: Any) -> None:
    row = _row(
        0,
        request_id="r-1",
        transport="http",
        query="What is idempotency?",
        author="Ada Quillfeather",
        author_id="a-1",
        author_method="api_key",
        expanded_queries=["idempotent steps"],
        retrieved=[RetrievedRef(chunk_id="c-1", score=0.5, rerank_score=0.7, link="https://x/1")],
        reranker="mmr",
        prompt_tokens=100,
        completion_tokens=4,
        answer="Safe to re-run.",
        model_version="smollm2@abc",
        latency_ms=LatencyMs(retrieval=1.5, generation=20.0, total=22.0),
    )
    warehouse.append_inference_log(row)
    assert list(warehouse.inference_logs()) == [row]


def test_rows_are_time_ordered_and_filtered(warehouse: Any) -> None:
    for minutes, author, version in [(2, "Ada Quillfeather", "v2"), (0, "Ada Quillfeather", "v1"), (1, "Bo Lin", "v1")]:
        warehouse.append_inference_log(_row(minutes, author=author, author_id=user_id(author), model_version=version))
    assert [r.time for r in warehouse.inference_logs()] == [T0 + timedelta(minutes=m) for m in (0, 1, 2)]
    # start inclusive, end exclusive
    window = warehouse.inference_logs(start=T0 + timedelta(minutes=1), end=T0 + timedelta(minutes=2))
    assert [r.author for r in window] == ["Bo Lin"]
    assert [r.model_version for r in warehouse.inference_logs(author="ada  QUILLFEATHER")] == ["v1", "v2"]
    assert [r.author for r in warehouse.inference_logs(author=user_id("Bo Lin"))] == ["Bo Lin"]
    assert [r.author for r in warehouse.inference_logs(model_version="v1")] == ["Ada Quillfeather", "Bo Lin"]
    assert list(warehouse.inference_logs(author="Ada Quillfeather", model_version="v9")) == []


def test_pages_do_not_lose_or_repeat_rows(warehouse: Any) -> None:
    rows = [_row(0, request_id=f"r-{i}") for i in range(7)]  # same time: ordered by id
    for row in rows:
        warehouse.append_inference_log(row)
    got = [r.id for r in warehouse.inference_logs(batch_size=3)]
    assert got == sorted(r.id for r in rows)


def test_old_rows_with_unknown_keys_stay_readable() -> None:
    row = InferenceLog.from_mongo(
        {"_id": "x", "time": datetime(2026, 1, 1), "status": "error", "route": "canary", "latency_ms": {"total": 3}}
    )
    assert row.id == "x"
    assert row.time == datetime(2026, 1, 1, tzinfo=UTC)  # naive = UTC
    assert row.latency_ms == LatencyMs(total=3.0)
    assert row.retrieved == []
    with pytest.raises(ValidationError):
        InferenceLog.model_validate({"time": T0})  # status is required


def test_request_log_writes_through_the_warehouse_and_counts_failures(warehouse: Any) -> None:
    failures: list[int] = []
    log = RequestLog(warehouse, on_failure=lambda: failures.append(1))
    assert log.write({"status": "ok", "query": "q"}) is True
    (row,) = warehouse.inference_logs()
    assert row.query == "q"
    assert row.time.tzinfo is not None
    assert log.write({"status": "ok", "prompt_tokens": "many"}) is False  # invalid row: counted, not raised
    assert log.write(row) is False  # the same id twice: the store refuses, counted
    assert log.failures == 2
    assert failures == [1, 1]
    assert len(list(warehouse.inference_logs())) == 1
