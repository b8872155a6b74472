"""The demo stages of this issue: etl.crawl (sample repo as file:// + served fixture pages) and validate.raw."""

from __future__ import annotations

from pathlib import Path

import pytest

SAMPLE = Path(__file__).resolve().parents[2] / "data" / "sample"
pytestmark = [pytest.mark.slow, pytest.mark.skipif(not (SAMPLE / "repos").is_dir(), reason="no sample corpus")]


def test_etl_demo_stage_is_idempotent_and_validates(settings):
    from twin_core.demo.etl import stage
    from twin_core.demo.validation import stage as validate_stage

    first = stage(SAMPLE)
    assert first["totals"]["failed"] == 0 and first["totals"]["documents_created"] == 3
    second = stage(SAMPLE)
    assert second["totals"]["documents_unchanged"] == 3 and second["totals"]["documents_created"] == 0
    checked = validate_stage(SAMPLE)
    assert checked["status"] == "ok" and checked["documents"] == 3 and checked["quarantined"] == []
