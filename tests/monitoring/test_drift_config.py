"""configs/monitoring.yaml is checked when it is loaded: a method Evidently 0.7 does not have (or not for
the signal's values), a threshold that is not a finite number in its method's range, a bad rate
setting is a ConfigError (exit 2) naming the file, the signal and the allowed values, before any model
loads. And windows too long to be a window are refused as bad input."""

from __future__ import annotations

import math
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

LENGTH = "scope: queries, column: query, kind: length"
RATE = "scope: operations, column: outcome, kind: rate"
COVERAGE = "scope: operations, column: retrieved, kind: coverage"


def test_the_static_method_table_is_evidentlys_registry() -> None:
    """Which stattests exist, which value types each takes, and whether its score is a p-value (drift
    below the threshold) or a distance (above), read from Evidently's registry by running each one on
    two far apart samples."""
    import numpy as np
    import pandas as pd
    from evidently.legacy.calculations.stattests.registry import _registered_stat_tests
    from evidently.legacy.core import ColumnType
    from evidently.legacy.metrics.data_drift.embedding_drift_methods import DISTANCE_DICT

    from twin_core.monitoring.config import EMBEDDING_DISTANCES, MAX_DISTANCE, STATTESTS, TEXT_STATTESTS

    samples = {
        ColumnType.Numerical: (pd.Series(np.arange(100.0)), pd.Series(np.arange(100.0) + 1000)),
        ColumnType.Categorical: (pd.Series(["a"] * 60 + ["b"] * 40), pd.Series(["b"] * 90 + ["a"] * 10)),
    }
    found: dict[str, tuple[frozenset[str], bool]] = {}
    for name, by_type in _registered_stat_tests.items():
        types = frozenset(t.value for t in by_type if t != ColumnType.Text)
        if not types:
            continue
        column_type = ColumnType.Numerical if "num" in types else ColumnType.Categorical
        result = by_type[column_type](*samples[column_type], column_type, 0.5)
        assert result.drifted, name  # far apart: every test sees it
        found[name] = (types, result.drift_score < 0.5)
    assert found == STATTESTS
    assert set(_registered_stat_tests) == set(STATTESTS) | set(TEXT_STATTESTS)
    assert set(EMBEDDING_DISTANCES) == set(DISTANCE_DICT)
    js = _registered_stat_tests["jensenshannon"][ColumnType.Numerical]
    top = js(*samples[ColumnType.Numerical], ColumnType.Numerical, 0.5).drift_score  # disjoint: the maximum
    assert math.isclose(top, MAX_DISTANCE["jensenshannon"], rel_tol=1e-9)


def test_every_distance_signal_is_decided_with_its_permutation_p_value(settings: Any) -> None:
    """The distances of the shipped config (wasserstein, jensenshannon, the embedding distance) drift when
    above their threshold AND their p-value is below alpha 0.05; p-value tests, rates and coverage not."""
    from twin_core.monitoring.config import load_signals

    signals = {s.name: s for s in load_signals(settings)}
    permuted = {n for n, s in signals.items() if s.permuted}
    assert permuted == {n for n, s in signals.items() if s.method in ("wasserstein", "jensenshannon", "distance")}
    assert {signals[n].alpha for n in permuted} == {0.05}
    length = signals["query_length"]
    assert (length.drifted(1.5, 0.001), length.drifted(1.5, 0.05), length.drifted(1.5, None)) == (True, False, None)
    assert (length.drifted(0.5, 0.001), length.drifted(0.5, None)) == (False, False)  # within: p is not needed
    assert signals["document_length"].drifted(0.01) and not signals["error_rate"].permuted


def test_the_shipped_config_is_the_built_in_copy(settings: Any) -> None:
    from twin_core.monitoring.config import DEFAULTS, _signal, load_signals

    assert load_signals(settings) == [_signal(n, s, "built-in signals") for n, s in DEFAULTS.items()]
    error_rate = next(s for s in load_signals(settings) if s.name == "error_rate")
    assert (error_rate.kind, error_rate.method, error_rate.threshold, error_rate.confidence) == (
        "rate",
        "newcombe",
        0.02,
        0.95,
    )
    coverage = next(s for s in load_signals(settings) if s.name == "retrieval_coverage")
    assert (coverage.column, coverage.kind, coverage.method, coverage.threshold, coverage.confidence) == (
        "retrieved",
        "coverage",
        "wilson",
        0.5,
        0.95,
    )
    assert (coverage.below, coverage.absolute, coverage.drifted(0.49), coverage.drifted(0.5)) == (
        True,
        True,
        True,
        False,
    )


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        (
            f"{LENGTH}, method: wasserstien, threshold: 1.0",
            "method 'wasserstien' for a length signal (num): expected one of anderson, cramer_von_mises, ed, "
            "empirical_mmd, es, hellinger, jensenshannon, kl_div, ks, mannw, psi, t_test, wasserstein",
        ),
        (
            f"{LENGTH}, method: chisquare, threshold: 0.05",
            "method 'chisquare' for a length signal (num): expected one of anderson,",
        ),
        (f"{LENGTH}, method: wasserstein, threshold: .nan", "threshold nan: expected a finite number"),
        (f"{LENGTH}, method: wasserstein, threshold: .inf", "threshold inf: expected a finite number"),
        (
            f"{LENGTH}, method: wasserstein, threshold: -5",
            "threshold -5.0 for method 'wasserstein': expected a distance, 0 < threshold < inf",
        ),
        (
            f"{LENGTH}, method: ks, threshold: 1.5",
            "threshold 1.5 for method 'ks': expected a p-value, 0 < threshold < 1",
        ),
        (f"{LENGTH}, method: ks, threshold: 0", "expected a p-value, 0 < threshold < 1"),
        (
            "scope: queries, column: query, kind: language, method: jensenshannon, threshold: 0.9",
            "threshold 0.9 for method 'jensenshannon': expected a distance, 0 < threshold < 0.8326",
        ),
        (
            "scope: queries, column: query, kind: embedding, method: model, threshold: 0.4",
            "expected a ROC AUC, 0.5 < threshold < 1 (0.5 is chance)",
        ),
        (
            "scope: queries, column: query, kind: embedding, method: distance, dist: cosin, threshold: 0.3",
            "dist 'cosin': expected one of cosine, euclidean, cityblock, chebyshev",
        ),
        (f"{LENGTH}, method: wasserstein, threshold: true", "(True is not a number)"),
        (f"{LENGTH}, method: wasserstein, treshold: 1.0", "unknown key(s) ['treshold']; allowed: scope, column,"),
        (
            "scope: queries, column: answer, kind: length, method: ks, threshold: 0.05",
            "column 'answer' is not in scope queries (query)",
        ),
        (f"{RATE}, method: jensenshannon, threshold: 0.3", "rate method 'jensenshannon': expected one of newcombe"),
        (f"{RATE}, method: newcombe, threshold: -0.1", "expected a minimum increase of the rate, 0 <= threshold < 1"),
        (f"{RATE}, method: newcombe, threshold: 0.02, confidence: 1", "confidence 1.0: expected 0.5 < confidence < 1"),
        (f"{RATE}, method: newcombe, threshold: 0.02, confidence: .nan", "confidence nan: expected a finite number"),
        (f"{COVERAGE}, method: newcombe, threshold: 0.5", "coverage method 'newcombe': expected one of wilson"),
        (f"{COVERAGE}, method: wilson, threshold: 0", "expected a share of the requests, 0 < threshold < 1"),
        (f"{COVERAGE}, method: wilson, threshold: 1", "expected a share of the requests, 0 < threshold < 1"),
        (f"{COVERAGE}, method: wilson, threshold: 0.5, confidence: 0.4", "confidence 0.4: expected 0.5 < confidence"),
        (
            "scope: operations, column: outcome, kind: coverage, method: wilson, threshold: 0.5",
            "a coverage reads the column 'retrieved', not 'outcome'",
        ),
        (  # a distance's alpha (1 - confidence) at or below the smallest permutation p-value never drifts
            f"{LENGTH}, method: wasserstein, threshold: 1.0, confidence: 0.9995",
            "confidence 0.9995: expected 0.5 < confidence < 0.999 (its alpha must be above the smallest p-value "
            "of 999 permutations, 1/1000)",
        ),
        (
            "scope: queries, column: query, kind: embedding, method: distance, threshold: 0.3, confidence: 0.4",
            "confidence 0.4: expected 0.5 < confidence < 0.999",
        ),
    ],
)
def test_a_bad_signal_is_a_config_error_naming_file_signal_and_allowed_values(
    twin_home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, spec: str, message: str
) -> None:
    from twin_core.errors import ConfigError
    from twin_core.monitoring.config import load_signals
    from twin_core.settings import get_settings

    path = tmp_path / "monitoring.yaml"
    path.write_text(f"signals:\n  sig_x: {{{spec}}}\n")
    monkeypatch.setenv("TWIN_MONITOR_CONFIG", str(path))
    get_settings.cache_clear()
    with pytest.raises(ConfigError) as raised:
        load_signals(get_settings())
    assert str(raised.value).startswith(f"TWIN_MONITOR_CONFIG {path}: signal 'sig_x'"), str(raised.value)
    assert message in str(raised.value)


def test_a_misspelt_method_exits_2_before_any_model_loads(twin_home: Path, tmp_path: Path, twin: Any) -> None:
    """With requests in the window (the check would score them): refused at load, no embedder loaded."""
    from support.synthetic_traffic import T0, request_logs

    from twin_core.settings import get_settings
    from twin_core.stores.warehouse import open_warehouse

    wh = open_warehouse(get_settings())
    for hour in (0, 1):
        begin = T0 + timedelta(hours=hour)
        for row in request_logs(begin, begin + timedelta(hours=1), 40):
            wh.append_inference_log(row)
    bad = tmp_path / "monitoring.yaml"
    bad.write_text(f"signals:\n  query_length: {{{LENGTH}, method: wasserstien, threshold: 1.0}}\n")
    end = (T0 + timedelta(hours=2)).isoformat()
    run = twin("monitor", "drift", "--window", "1h", "--end", end, env={"TWIN_MONITOR_CONFIG": str(bad)})
    assert run.returncode == 2, run.stderr
    assert run.result["kind"] == "config" and "method 'wasserstien'" in run.result["error"]
    assert str(bad) in run.result["error"] and "query_length" in run.result["error"]
    assert "loading embedding model" not in run.stderr


@pytest.mark.parametrize(
    ("length", "end", "message"),
    [
        ("99999999999d", "2026-11-22T10:00Z", "window '99999999999d': at most 366d"),
        ("367d", "2026-11-22T10:00Z", "window '367d': at most 366d"),
        ("1h", "0001-01-01T00:30Z", "window '1h' before --end 0001-01-01T00:30:00+00:00 starts before the year 1"),
    ],
)
def test_a_window_too_long_is_bad_input(length: str, end: str, message: str) -> None:
    from twin_core.errors import InputError
    from twin_core.monitoring.windows import parse_window

    with pytest.raises(InputError) as raised:
        parse_window(length, end)
    assert str(raised.value) == message
    assert parse_window("366d", "2026-11-22T10:00Z").label == "366d"


def test_a_reference_before_the_year_1_is_bad_input(settings: Any) -> None:
    from twin_core.errors import InputError
    from twin_core.monitoring import parse_window, plan_drift_check

    window = parse_window("1h", "0001-01-01T01:30Z")  # its previous hour would start before the year 1
    with pytest.raises(InputError, match="start before the year 1"):
        plan_drift_check(settings, window)
    later = parse_window("1d", "2026-11-22T12:00Z")
    with pytest.raises(InputError, match="the baseline window starts before the year 1"):
        plan_drift_check(settings, later, reference="baseline", baseline_end="0001-01-01T12:00Z")


def test_the_cli_refuses_a_window_too_long_with_exit_3(twin_home: Path, twin: Any) -> None:
    run = twin("monitor", "drift", "--window", "99999999999d")
    assert run.returncode == 3
    assert run.result["kind"] == "input" and run.result["error"] == "--window '99999999999d': at most 366d"
