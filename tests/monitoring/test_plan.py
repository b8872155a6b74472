"""The drift check's plan is pure: which reference window, which signals, which minimums."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest


@pytest.fixture
def window() -> Any:
    from twin_core.monitoring import parse_window

    return parse_window("1h", "2026-11-22T12:00:00Z")


def test_default_reference_is_the_previous_window(settings: Any, window: Any) -> None:
    from twin_core.monitoring import plan_drift_check

    plan = plan_drift_check(settings, window)
    assert plan.reference == "previous" and not plan.informational and not plan.plots
    assert plan.reference_window.key == "20261122T100000Z-1h"
    assert {s.scope for s in plan.signals} == {"queries", "answers", "operations"}
    assert plan.min_rows == 20


def test_baseline_is_pinned_and_before_the_window(settings: Any, window: Any) -> None:
    from twin_core.errors import InputError
    from twin_core.monitoring import plan_drift_check

    plan = plan_drift_check(settings, window, reference="baseline", baseline_end="2026-11-20T09:00Z")
    assert plan.reference_window.start == datetime(2026, 11, 20, 8, tzinfo=UTC)
    with pytest.raises(InputError, match="needs --baseline-end"):
        plan_drift_check(settings, window, reference="baseline")
    with pytest.raises(InputError, match="after the checked window"):
        plan_drift_check(settings, window, reference="baseline", baseline_end="2026-11-22T11:30Z")
    with pytest.raises(InputError, match="expected one of previous, baseline, training"):
        plan_drift_check(settings, window, reference="tomorrow")


def test_training_plan_is_informational_over_text_and_documents(settings: Any, window: Any) -> None:
    from twin_core.monitoring import plan_drift_check

    plan = plan_drift_check(settings, window, reference="training", alert=True)
    assert plan.informational and plan.reference_window is None
    assert {s.scope for s in plan.signals} == {"queries", "answers", "documents"}
    assert plan.describe() == {"kind": "training", "informational": True, "min_rows": 20}


def test_every_signal_names_its_statistic() -> None:
    from twin_core.monitoring.config import DEFAULTS, _signal

    statistics = {name: _signal(name, spec, "test").statistic for name, spec in DEFAULTS.items()}
    assert statistics["query_embedding"] == "cosine distance between the mean embeddings"
    assert statistics["query_language"] == "jensenshannon distance"
    assert statistics["document_length"] == "ks test p-value"
