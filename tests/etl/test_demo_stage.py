"""The demo stages of this issue: etl.crawl (sample repo as file:// + served fixture pages) and validate.raw."""

from __future__ import annotations

from pathlib import Path

import pytest

pytestmark = pytest.mark.slow


def test_etl_demo_stage_is_idempotent_and_validates(settings, sample_dir: Path) -> None:
    from twin_core.demo.etl import stage
    from twin_core.demo.validation import stage as validate_stage

    first = stage(sample_dir)
    assert first["totals"]["failed"] == 0
    assert first["totals"]["documents_created"] == 3
    second = stage(sample_dir)
    assert second["totals"]["documents_unchanged"] == 3
    assert second["totals"]["documents_created"] == 0
    checked = validate_stage(sample_dir)
    assert checked["status"] == "ok"
    assert checked["documents"] == 3
    assert checked["quarantined"] == []
