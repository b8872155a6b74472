"""The failure-ratio gate of `twin validate raw`: its decision comes with its sample size and uncertainty."""

from __future__ import annotations

from twin_core.validation.raw import failure_gate, wilson_ci95


def test_the_interval_is_wilsons_clipped_to_shares() -> None:
    # no failure in 30 documents still allows up to 11 % failing; every one failing of 1, anything from 21 %
    assert wilson_ci95(0, 30) == [0.0, 0.1135]
    assert wilson_ci95(3, 10) == [0.1078, 0.6032]
    assert wilson_ci95(1, 1) == [0.2065, 1.0]


def test_gate_passes_at_the_threshold_and_fails_above() -> None:
    assert failure_gate(2, 10, 0.2)["decision"] == "pass"
    gate = failure_gate(3, 10, 0.2)
    assert (gate["decision"], gate["n"], gate["failed"], gate["failure_ratio"]) == ("fail", 10, 3, 0.3)
    assert gate["reason"] == "3/10 documents failed validation: ratio 0.30 (95% CI 0.11-0.60) > max 0.2"


def test_gate_holds_without_data() -> None:
    gate = failure_gate(0, 0, 0.0)
    assert (gate["decision"], gate["failure_ratio"], gate["ci95"]) == ("hold", None, None)
