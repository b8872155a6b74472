"""The demo stages of this issue: etl.crawl (sample repo as file:// + served fixture pages) and validate.raw."""

from __future__ import annotations

from pathlib import Path

import pytest
from support.demo_site import kept_demo_site

pytestmark = pytest.mark.slow


def test_etl_demo_stage_is_idempotent_and_validates(settings, sample_dir: Path, monkeypatch) -> None:
    from twin_core.demo.etl import stage
    from twin_core.demo.validation import stage as validate_stage

    # both crawls on one site of this test's own (the demo's fixed port may be another process's meanwhile)
    with kept_demo_site(monkeypatch) as site:
        first = stage(sample_dir)
        validated = validate_stage(sample_dir)  # the demo's order: the crawl, then validation (which settles it)
        second = stage(sample_dir)
    assert (validated["status"], validated["documents"], validated["quarantined"]) == ("ok", 3, [])
    assert site.crawls == 2
    assert first["totals"]["failed"] == 0
    assert first["totals"]["documents_created"] == 3
    assert first["domains"][site.base_url.removeprefix("http://")]["succeeded"] == 2  # the two pages
    assert second["totals"]["documents_unchanged"] == 3
    assert second["totals"]["documents_created"] == 0
    checked = validate_stage(sample_dir)
    assert checked["status"] == "ok"
    assert checked["documents"] == 3
    assert checked["quarantined"] == []
