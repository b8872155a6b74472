"""`twin etl crawl`'s exit code when links fail: 4 (retried by Airflow) when a retry may fix every failed
link (a 503, a timeout, a store that was unavailable), 3 (bad input, not retried) when any cannot be fixed."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ETL_PACKAGE = Path(__file__).resolve().parents[2] / "src" / "twin_core" / "etl"


def test_every_reason_the_crawlers_raise_is_classified() -> None:
    """A new CrawlError reason must be classified on purpose in twin_core.etl.errors (unknown = permanent)."""
    from twin_core import errors
    from twin_core.etl.errors import PERMANENT_REASONS, TEMPORARY_REASONS

    raised: set[str] = set()
    for source in ETL_PACKAGE.rglob("*.py"):
        raised |= set(re.findall(r'CrawlError\(\s*"([a-z_]+)"', source.read_text(encoding="utf-8")))
    assert {"timeout", "connection", "dns", "invalid_url", "empty", "too_large"} <= raised  # the scan works
    assert raised - TEMPORARY_REASONS - PERMANENT_REASONS == set()
    # a TwinError while storing a link's documents fails it with the error's kind
    kinds = {c.kind for c in (errors.TwinError, errors.ConfigError, errors.InputError, errors.BackendUnavailable)}
    assert kinds - TEMPORARY_REASONS - PERMANENT_REASONS == set()
    assert TEMPORARY_REASONS.isdisjoint(PERMANENT_REASONS)


@pytest.mark.parametrize(
    ("reason", "temporary"),
    [
        ("timeout", True),
        ("connection", True),
        ("dns", True),
        ("unavailable", True),  # BackendUnavailable while upserting a link's documents
        ("http_500", True),
        ("http_502", True),
        ("http_503", True),
        ("http_429", True),
        ("http_408", True),
        ("http_404", False),
        ("http_403", False),
        ("http_410", False),
        ("http_error", False),
        ("invalid_url", False),
        ("too_large", False),
        ("empty", False),
        ("challenge", False),
        ("input", False),
        ("unexpected", False),
        ("something_new", False),  # unknown: permanent, no pointless retries
    ],
)
def test_reason_classification(reason: str, temporary: bool) -> None:
    from twin_core.etl.errors import is_temporary

    assert is_temporary(reason) is temporary


def test_a_retry_needs_every_failure_to_be_temporary() -> None:
    from twin_core.etl.errors import all_temporary

    assert all_temporary(["http_503", "timeout"])
    assert not all_temporary(["http_503", "http_404"])
    assert not all_temporary([])


def _crawl(twin, *links: str):  # noqa: ANN001, ANN202
    args = ["etl", "crawl", "--user", "Ada Quillfeather"]
    for link in links:
        args += ["--link", link]
    return twin(*args)


@pytest.mark.slow
def test_a_link_answering_503_exits_4_to_be_retried(twin, crawl_settings, site) -> None:
    run = _crawl(twin, f"{site.base_url}/status/503")
    assert run.returncode == 4, run.stderr[-2000:]
    assert run.result["status"] == "failed"
    assert run.result["retryable"] is True
    assert [r["reason"] for r in run.result["links"]] == ["http_503"]
    assert "every failed link failed for a temporary reason (http_503): exit code 4, retry" in run.stderr


@pytest.mark.slow
def test_a_good_link_and_a_503_exit_4_and_keep_the_good_one(twin, crawl_settings, site) -> None:
    run = _crawl(twin, f"{site.base_url}/blog.html", f"{site.base_url}/status/502")
    assert run.returncode == 4, run.stderr[-2000:]
    assert (run.result["status"], run.result["retryable"]) == ("partial", True)
    assert run.result["totals"]["documents_created"] == 1
    # the retry (this try's result is not kept) reports it created again: it still awaits validation
    again = _crawl(twin, f"{site.base_url}/blog.html", f"{site.base_url}/status/502")
    assert again.returncode == 4
    totals = again.result["totals"]
    assert (totals["documents_created"], totals["documents_updated"], totals["documents_unchanged"]) == (1, 0, 0)
    assert again.result["links"][0]["notes"] == [
        "still awaiting validation since an earlier crawl, so reported again: created=1"
    ]


@pytest.mark.slow
def test_a_link_answering_404_exits_3(twin, crawl_settings, site) -> None:
    run = _crawl(twin, f"{site.base_url}/status/404")
    assert run.returncode == 3, run.stderr[-2000:]
    assert (run.result["status"], run.result["retryable"]) == ("failed", False)
    assert "failed links that a retry cannot fix (http_404): exit code 3, no retry" in run.stderr


@pytest.mark.slow
def test_a_503_and_a_404_exit_3(twin, crawl_settings, site) -> None:
    """A retry would fail again on the 404: the step is not retried, and the 503 is reported with it."""
    run = _crawl(twin, f"{site.base_url}/status/503", f"{site.base_url}/status/404")
    assert run.returncode == 3, run.stderr[-2000:]
    assert run.result["retryable"] is False
    assert sorted(r["reason"] for r in run.result["links"]) == ["http_404", "http_503"]
