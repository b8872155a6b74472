"""Synthetic request logs and instruct datasets for the monitoring tests, the benchmark and local trials
(test data: it lives beside the tests, not in the product).

``style="reference"`` asks short questions about the twin's own topics (data engineering) with good
retrieval scores; ``style="shifted"`` asks long questions about other topics, half of them in German,
gets answers about three times longer and lower retrieval scores. Seeded: the same arguments always
give the same rows. Run as a script (it imports only twin_core):

    python tests/support/synthetic_traffic.py --start 2026-11-22T10:00Z --hours 3 --per-hour 40
"""

from __future__ import annotations

import argparse
import io
import random
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from twin_core.domain.inference import InferenceLog, LatencyMs, RetrievedRef

# The replay the monitoring tests use: hours 0-24 of stationary traffic from T0 (24 checked windows, each
# against the hour before), then one shifted hour.
T0 = datetime(2026, 11, 22, 10, tzinfo=UTC)
AUTHOR = "Ada Quillfeather"
PER_HOUR = 40
STATIONARY_HOURS = 25
SHIFTED_HOUR = STATIONARY_HOURS

TOPICS = {
    "reference": [
        "idempotent batch jobs", "Kafka consumer lag", "Spark partitions", "the data warehouse schema",
        "Airflow retries", "dbt incremental models", "feature stores", "vector search indexes",
        "late-arriving events", "schema evolution in Parquet", "streaming joins", "backfills",
    ],
    "shifted": [
        "sourdough starter hydration", "tomato seedlings in April", "marathon training plans",
        "watercolour landscapes", "the offside rule in football", "renovating a bathroom floor",
        "sailing in strong wind", "growing orchids indoors", "knitting a wool scarf", "baking croissants",
    ],
}  # fmt: skip
ASKS = ["How do I handle {t}?", "What is your take on {t}?", "Why do {t} fail?", "When should I use {t}?"]
LONG_ASKS = [
    "I have been struggling for several weeks now and I would really like a detailed step by step "
    "explanation of {t}, including the usual mistakes beginners make and how you would approach it yourself?",
    "Could you please write me a long and thorough guide about {t}, covering the history, the tools "
    "people use today, and what you personally recommend for someone starting from scratch at home?",
]
GERMAN_ASKS = [
    "Ich versuche seit einigen Wochen, mehr über {t} zu lernen, und ich wüsste gern, wie du das selbst "
    "machen würdest und welche Fehler die meisten Anfänger dabei immer wieder machen?",
    "Kannst du mir bitte eine ausführliche Anleitung zu {t} schreiben, mit allem, was man dafür braucht, "
    "und mit deinen eigenen Erfahrungen aus den letzten Jahren?",
]
ANSWER = "In my experience {t} come down to one rule: make every step safe to run twice. {extra}"
EXTRAS = [
    "Write outputs to a fresh partition and swap it in.",
    "Keep state in the warehouse, never in the worker.",
    "Measure before tuning anything.",
]


def _query(rng: random.Random, style: str) -> str:
    topic = rng.choice(TOPICS[style])
    asks = ASKS if style == "reference" else rng.choice([LONG_ASKS, GERMAN_ASKS])
    return rng.choice(asks).format(t=topic)


def _answer(rng: random.Random, style: str) -> str:
    extras = 1 if style == "reference" else 6  # a shifted hour gets much longer answers
    return ANSWER.format(t=rng.choice(TOPICS[style]), extra=" ".join(rng.choices(EXTRAS, k=extras)))


def request_logs(
    start: datetime,
    end: datetime,
    count: int,
    *,
    style: str = "reference",
    author: str = "Ada Quillfeather",
    seed: int = 0,
    error_every: int = 50,
) -> list[InferenceLog]:
    """``count`` requests spread evenly over ``[start, end)``."""
    rng = random.Random(f"{seed}-{style}-{start.isoformat()}")
    step = (end - start) / max(count, 1)
    score_mean = 0.72 if style == "reference" else 0.42
    rows = []
    for i in range(count):
        error = error_every > 0 and i % error_every == error_every - 1
        top = min(0.99, max(0.0, rng.gauss(score_mean, 0.05)))
        rows.append(
            InferenceLog(
                id=f"synthetic-{style}-{start:%Y%m%dT%H%M%S}-{seed}-{i}",
                time=start + step * i,
                status="error" if error else "ok",
                error="LLMUnavailable: synthetic" if error else None,
                transport="http",
                query=_query(rng, style),
                author=author,
                retrieved=[] if error else [RetrievedRef(chunk_id=f"c{i}-{k}", score=top - 0.03 * k) for k in range(3)],
                answer=None if error else _answer(rng, style),
                model_version="smollm2-135m-instruct",
                latency_ms=LatencyMs(total=max(50.0, rng.gauss(1500, 200))),
            )
        )
    return rows


def log_hours(warehouse: Any, *mutations: Callable[[list[InferenceLog]], None] | None) -> None:
    """Hour i from T0 holds PER_HOUR requests, changed in place by ``mutations[i]`` (None: as generated), appended
    to the warehouse's request log."""
    for i, mutate in enumerate(mutations):
        begin = T0 + timedelta(hours=i)
        rows = request_logs(begin, begin + timedelta(hours=1), PER_HOUR)
        if mutate is not None:
            mutate(rows)
        for row in rows:
            warehouse.append_inference_log(row)


def instruct_rows(count: int, *, seed: int = 1) -> list[dict[str, Any]]:
    """Rows of an instruct dataset (CONTRACTS §2) whose instructions look like the reference style."""
    rng = random.Random(f"instruct-{seed}")
    return [
        {
            "id": f"i{i}",
            "instruction": _query(rng, "reference"),
            "answer": _answer(rng, "reference"),
            "document_id": f"doc-{i % 10}",
            "category": "articles",
            "link": f"https://example.com/{i % 10}",
            "split": "train",
        }
        for i in range(count)
    ]


def write_instruct_dataset(artifacts: Any, author_slug: str, rows: list[dict[str, Any]]) -> str:
    """Store ``rows`` as ``datasets/instruct/<slug>/vNNNN`` (train.parquet, metadata last); the version id."""
    import pandas as pd

    buf = io.BytesIO()
    pd.DataFrame(rows).to_parquet(buf, index=False)
    version = artifacts.put_version(
        f"datasets/instruct/{author_slug}", {"train.parquet": buf.getvalue()}, {"kind": "instruct", "rows": len(rows)}
    )
    return f"instruct/{author_slug}/{version.version}"


def main(argv: list[str] | None = None) -> None:
    from twin_core.monitoring.windows import parse_time
    from twin_core.settings import get_settings
    from twin_core.stores.warehouse import open_warehouse

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--start", required=True)
    parser.add_argument("--hours", type=int, default=1)
    parser.add_argument("--per-hour", type=int, default=40)
    parser.add_argument("--style", choices=sorted(TOPICS), default="reference")
    args = parser.parse_args(argv)
    warehouse = open_warehouse(get_settings())
    start = parse_time(args.start)
    for h in range(args.hours):
        begin = start + timedelta(hours=h)
        for row in request_logs(begin, begin + timedelta(hours=1), args.per_hour, style=args.style):
            warehouse.append_inference_log(row)
    print(f"wrote {args.hours * args.per_hour} synthetic requests from {start.isoformat()}")


if __name__ == "__main__":
    main()
