"""Monitoring fixtures: an embedded TWIN_HOME with an instruct dataset, a training corpus and request
logs for 26 hours (25 of stationary traffic, then one shifted hour), and the CLI's text tools."""

from __future__ import annotations

import os
from datetime import datetime, timedelta
from typing import Any

import pytest
from support.synthetic_traffic import AUTHOR, PER_HOUR, SHIFTED_HOUR, STATIONARY_HOURS, T0

CORPUS = [
    "Idempotent batch jobs overwrite a partition instead of appending to it, so a retry is always safe.",
    "Kafka consumer lag tells you how far behind the stream your pipeline is running right now.",
    "Spark partitions decide parallelism; too few starve the cluster and too many drown the driver.",
    "A data warehouse schema should be boring: facts, dimensions, and no surprises on Monday morning.",
    "Airflow retries with exponential backoff absorb flaky networks without paging anyone at night.",
    "dbt incremental models only process the new rows, which keeps the nightly build under ten minutes.",
    "Late-arriving events need a watermark, otherwise yesterday's totals silently change tomorrow.",
    "Backfills are just scheduled runs over past intervals when every task is idempotent.",
]
NEW_LIKE = [
    "Streaming joins need state stores and a retention policy, or memory grows until the job dies.",
    "Schema evolution in Parquet works when new columns are optional and nobody renames old ones.",
    "Feature stores keep training and serving features consistent, which is half of MLOps.",
    "Vector search indexes trade recall for latency; measure both before picking the parameters.",
    "Data contracts between teams stop a renamed column from breaking twenty downstream dashboards.",
    "Partition pruning is the cheapest speed-up a warehouse query will ever get.",
]
NEW_SHIFTED = [
    "My sourdough starter doubled overnight after I moved it next to the warm radiator in the kitchen.",
    "Tomato seedlings want sixteen hours of light in April, and a fan makes their stems stronger.",
    "The marathon plan peaks at thirty-two kilometres three weeks before race day, then tapers.",
    "Watercolour skies look best when you wet the paper first and drop the pigment in quickly.",
    "Orchids bloom again if the nights are a few degrees cooler than the days for a month.",
    "Croissant dough needs cold butter and three single folds, resting in the fridge between them.",
]


def _post(text: str, i: int, when: datetime, author_id: str) -> Any:
    from twin_core.domain.documents import PostDocument

    return PostDocument(
        link=f"https://www.linkedin.com/feed/update/urn:li:activity:{abs(hash(text)) % 10**9}{i}/",
        platform="linkedin",
        author_id=author_id,
        author_full_name=AUTHOR,
        content={"Content": text},
        crawled_at=when,
    )


@pytest.fixture(scope="module")
def monitored_home(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """TWIN_HOME with: instruct dataset v0001 over the corpus; hours 0-24 of stationary traffic, hour 25
    shifted; new documents like the corpus in hour 24, shifted ones in hour 25."""
    home = tmp_path_factory.mktemp("monitoring") / "twin"
    old = os.environ.get("TWIN_HOME")
    os.environ["TWIN_HOME"] = str(home)
    from support import synthetic_traffic as synthetic

    from twin_core.settings import get_settings
    from twin_core.stores.artifacts import open_artifact_store
    from twin_core.stores.warehouse import open_warehouse

    get_settings.cache_clear()
    settings = get_settings()
    wh, art = open_warehouse(settings), open_artifact_store(settings)
    user, _ = wh.get_or_create_user(AUTHOR)
    corpus = [_post(t, i, T0 - timedelta(days=3), user.id) for i, t in enumerate(CORPUS)]
    wh.upsert_documents(corpus)
    rows = synthetic.instruct_rows(160)
    for i, row in enumerate(rows):
        row["document_id"] = corpus[i % len(corpus)].id
    version = synthetic.write_instruct_dataset(art, "ada-quillfeather", rows)
    like_at, shifted_at = T0 + timedelta(hours=SHIFTED_HOUR - 1), T0 + timedelta(hours=SHIFTED_HOUR)
    wh.upsert_documents([_post(t, i, like_at + timedelta(minutes=5 * i), user.id) for i, t in enumerate(NEW_LIKE)])
    wh.upsert_documents(
        [_post(t, i, shifted_at + timedelta(minutes=5 * i), user.id) for i, t in enumerate(NEW_SHIFTED)]
    )
    styles = [(hour, "reference") for hour in range(STATIONARY_HOURS)] + [(SHIFTED_HOUR, "shifted")]
    for hour, style in styles:
        begin = T0 + timedelta(hours=hour)
        for row in synthetic.request_logs(begin, begin + timedelta(hours=1), PER_HOUR, style=style, author=AUTHOR):
            wh.append_inference_log(row)
    yield {"home": home, "settings": settings, "warehouse": wh, "artifacts": art, "version": version}
    get_settings.cache_clear()
    if old is None:
        os.environ.pop("TWIN_HOME", None)
    else:
        os.environ["TWIN_HOME"] = old


@pytest.fixture(scope="module")
def tools(monitored_home: dict[str, Any]) -> Any:
    """The CLI's text tools: the feature pipeline's embedder (offline all-MiniLM-L6-v2)."""
    from twin_core.cli.monitor import text_tools

    return text_tools(monitored_home["settings"])


@pytest.fixture
def hour_window() -> Any:
    """``hour_window(2)`` is 12:00-13:00 on the fixture day (hour 0 starts at T0, 10:00)."""
    from twin_core.monitoring import parse_window

    return lambda hour: parse_window("1h", T0 + timedelta(hours=hour + 1))
