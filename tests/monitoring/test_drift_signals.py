"""Each signal is decided on the values it has, states them, and holds (never "not drifted") without
enough of them; the server error rate counts server failures only and alerts only on an increase,
with the interval of that increase; a window where (nearly) no answered request retrieved a chunk pages
on its own, once per episode, and holds with too few requests.

The text tools are stand-ins (one constant embedding, every text English): no model is loaded, and the
text signals of two hours of the same synthetic traffic score far below their thresholds."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from support.synthetic_traffic import T0, log_hours

Mutate = Callable[[list[Any]], None]


@pytest.fixture
def tools() -> Any:
    import numpy as np

    from twin_core.monitoring import TextTools

    return TextTools(embed=lambda texts: np.ones((len(texts), 8)), language=lambda _: "en", vocabulary=frozenset())


@pytest.fixture
def hours(settings: Any, warehouse: Any, tools: Any) -> Any:
    """``hours(*mutations)``: hour i from T0 holds 40 requests changed by mutation i (None: as logged);
    returns ``check(hour)``, the alerting drift check of that hour against the hour before (with the
    settings of the time of the check)."""
    from twin_core.monitoring import parse_window, run_drift_check
    from twin_core.settings import get_settings
    from twin_core.stores.artifacts import open_artifact_store

    artifacts = open_artifact_store(settings)

    def seed(*mutations: Mutate | None) -> Callable[[int], dict[str, Any]]:
        log_hours(warehouse, *mutations)
        return lambda hour: run_drift_check(
            get_settings(),
            parse_window("1h", T0 + timedelta(hours=hour + 1)),
            tools=tools,
            warehouse=warehouse,
            artifacts=artifacts,
            alert=True,
        )

    return seed


def _no_retrieval(keep: int = 0) -> Mutate:
    def mutate(rows: list[Any]) -> None:
        for row in rows[keep:]:
            row.retrieved = []

    return mutate


def _status(status: str, count: int = 12) -> Mutate:
    def mutate(rows: list[Any]) -> None:
        for row in rows[:count]:
            row.status, row.answer, row.error = status, None, f"{status}: test"

    return mutate


def _keep(count: int) -> Mutate:
    def mutate(rows: list[Any]) -> None:
        del rows[count:]

    return mutate


def _both(*mutations: Mutate) -> Mutate:
    def mutate(rows: list[Any]) -> None:
        for m in mutations:
            m(rows)

    return mutate


def _deliver(result: dict[str, Any]) -> None:
    """What `twin monitor record-alerts` records once a channel took the result's alerts."""
    from twin_core.monitoring import parse_window
    from twin_core.monitoring.alert_state import record_delivered
    from twin_core.settings import get_settings
    from twin_core.stores.artifacts import open_artifact_store

    window = parse_window("1h", result["window"]["end"])
    delivered = [(a["kind"], a["signal"]) for a in result["alerts"]]
    record_delivered(open_artifact_store(get_settings()), None, window, delivered)


UPPER_0_OF_40 = 0.087622  # the 95% Wilson interval of 0 of 40 is [0, 0.087622]
COVERAGE_STATISTIC = (
    "upper bound of the 95% Wilson interval of the share of the requests the server answered that retrieved a chunk"
)


def test_a_window_where_no_request_retrieved_a_chunk_pages_once_reminds_and_resolves(
    hours: Any, monkeypatch: Any
) -> None:
    """Hours 1-3 retrieve nothing (retrieval_score is held: no score to compare), hour 4 is back: one
    page, nothing the next hour within the repeat interval, a reminder with a 1 h repeat, one resolved."""
    from statistics import NormalDist

    from twin_core.settings import get_settings

    check = hours(None, _no_retrieval(), _no_retrieval(), _no_retrieval(), None)
    first = check(1)
    score_reason = "no retrieval scores in the window (0 of 40 requests)"
    assert first["verdict"] == "drift" and [d["signal"] for d in first["drifted"]] == ["retrieval_coverage"]
    assert first["held"] == [{"signal": "retrieval_score", "reason": score_reason, "rows": 0, "reference_rows": 40}]
    z = NormalDist().inv_cdf(0.975)
    assert round(z * z / (40 + z * z), 6) == UPPER_0_OF_40  # Wilson's upper bound of 0 of n: z^2 / (n + z^2)
    (alert,) = first["alerts"]
    assert {k: v for k, v in alert.items() if k not in ("window", "report", "html")} == {
        "signal": "retrieval_coverage", "kind": "drift", "value": UPPER_0_OF_40, "threshold": 0.5,
        "method": "wilson", "drift_when": "below", "statistic": COVERAGE_STATISTIC, "rows": 40,
        "reference_rows": 40, "reference": "previous", "p_value": None, "interval": [0.0, UPPER_0_OF_40],
        "confidence": 0.95, "share": 0.0, "reference_share": 1.0, "retrieved": 0, "reference_retrieved": 40,
        "detail": "0 of 40 requests retrieved a chunk (95% interval of the share: 0.0000 to 0.0876)",
    }  # fmt: skip
    assert alert["window"]["end"] == (T0 + timedelta(hours=2)).isoformat()
    assert alert["html"] == str(Path(first["report"]) / "report.html")  # the check's readable page
    stored = json.loads((Path(first["report"]) / "result.json").read_text())
    assert stored["verdict"] == "drift" and stored["alerts"] == first["alerts"] and stored["held"] == first["held"]
    _deliver(first)
    assert check(2)["alerts"] == []  # still open, within TWIN_MONITOR_ALERT_REPEAT_H (24 h): no second page
    monkeypatch.setenv("TWIN_MONITOR_ALERT_REPEAT_H", "1")
    get_settings.cache_clear()
    (reminder,) = check(3)["alerts"]  # 2 h of window time after the page: reminded
    since = (T0 + timedelta(hours=2)).isoformat()
    assert (reminder["kind"], reminder["signal"], reminder["since"], reminder["rows"]) == (
        "reminder", "retrieval_coverage", since, 40,
    )  # fmt: skip
    _deliver(check(3))
    back = check(4)
    (resolved,) = back["alerts"]
    assert back["verdict"] == "partial" and back["drifted"] == []  # retrieval_score: its reference has none
    assert (resolved["kind"], resolved["signal"], resolved["since"], resolved["value"]) == (
        "resolved", "retrieval_coverage", since, 1.0,
    )  # fmt: skip
    assert resolved["detail"] == "40 of 40 requests retrieved a chunk (95% interval of the share: 0.9124 to 1.0000)"
    _deliver(back)
    assert check(4)["alerts"] == []  # resolved once


def test_no_retrieval_in_too_few_requests_holds_and_never_pages(hours: Any) -> None:
    """Hour 1: 19 requests, none retrieving (< TWIN_MONITOR_MIN_ROWS 20): not enough data. Hour 3: 40
    requests, 25 rejected by the client, the 15 answered ones without chunks: the coverage is held."""
    check = hours(None, _both(_no_retrieval(), _keep(19)), None, _both(_no_retrieval(), _status("rejected", 25)))
    small = check(1)
    assert small["verdict"] == "not_enough_data" and small["alerts"] == [] and small["signals"] == {}
    assert small["reason"] == "19 requests in the window (< 20): no drift check"
    answered = check(3)
    reason = "15 requests the server answered in the window (of 40 requests; < 20): not enough data"
    coverage = answered["signals"]["retrieval_coverage"]
    assert (coverage["status"], coverage["skipped"], coverage["drifted"], coverage["rows"]) == (
        "held",
        reason,
        None,
        15,
    )
    assert answered["verdict"] == "partial" and answered["alerts"] == [] and answered["drifted"] == []
    assert {"signal": "retrieval_coverage", "reason": reason, "rows": 15, "reference_rows": 40} in answered["held"]


def test_no_retrieval_pages_even_when_the_reference_is_too_short_to_compare(hours: Any) -> None:
    """The hour before had 5 requests: every comparison of operations is held, the coverage (the window
    alone) still pages, with the reference's 5 reported."""
    result = hours(_keep(5), _no_retrieval())(1)
    assert result["verdict"] == "drift" and [d["signal"] for d in result["drifted"]] == ["retrieval_coverage"]
    (alert,) = result["alerts"]
    assert (alert["value"], alert["rows"], alert["reference_rows"], alert["reference_share"]) == (
        UPPER_0_OF_40, 40, 5, 1.0,
    )  # fmt: skip
    held = {h["signal"]: h["reason"] for h in result["held"]}
    short = "5 reference rows (previous) (< 20): not enough data"
    assert {n: held.get(n) for n in ("retrieval_score", "latency_ms", "error_rate")} == dict.fromkeys(
        ("retrieval_score", "latency_ms", "error_rate"), short
    )


def test_a_few_requests_without_chunks_never_page_and_too_small_a_sample_holds() -> None:
    """The coverage drifts on the upper bound of its interval: 10 of 40 retrieving pages, 15 of 40 does
    not; a sample where even 0 retrieving could not reach below the threshold is held, not "no drift"."""
    import pandas as pd

    from twin_core.monitoring.config import _signal
    from twin_core.monitoring.measures import ScopeData
    from twin_core.monitoring.rates import coverage_measure

    spec = {"scope": "operations", "column": "retrieved", "kind": "coverage", "method": "wilson", "threshold": 0.5}
    signal = _signal("retrieval_coverage", spec, "t")

    def frame(hits: int, n: int) -> Any:
        return pd.DataFrame({"outcome": ["ok"] * n, "retrieved": [3] * hits + [0] * (n - hits)})

    def decide(hits: int, n: int, minimum: int = 20) -> Any:
        return coverage_measure(signal, ScopeData("operations", "previous", frame(hits, n), frame(0, 0)), minimum)

    pages, quiet = decide(10, 40), decide(15, 40)
    assert (round(pages.score, 4), signal.drifted(pages.score)) == (0.4019, True)
    assert (round(quiet.score, 4), signal.drifted(quiet.score)) == (0.5297, False)
    assert "reference_share" not in pages.details and pages.reference_rows == 0  # no reference: not needed
    # a window of server errors retrieved nothing because it failed: the error rate pages for it, not the
    # coverage (only answered requests count: 40 errors and 5 answers with chunks are 5 answered, held)
    failed = pd.DataFrame({"outcome": ["error"] * 40 + ["ok"] * 5, "retrieved": [0] * 40 + [3] * 5})
    errors = coverage_measure(signal, ScopeData("operations", "previous", failed, frame(0, 0)), 20)
    assert (errors.score, errors.rows) == (None, 5) and errors.held.startswith("5 requests the server answered")
    tiny = decide(0, 3, minimum=3)
    assert (tiny.score, tiny.rows) == (None, 3)
    assert tiny.held == (
        "3 requests the server answered in the window: even 0 of 3 would leave the upper bound at 0.5615 "
        "(>= 0.5): not enough data"
    )


def test_every_signal_reports_and_holds_on_the_values_it_used(hours: Any, monkeypatch: Any) -> None:
    """Hour 1: 25 of 40 requests with a retrieval score (scored on 25); hour 2: 2 of 40 (held, not
    scored on 2 while reporting 40); hour 3: its reference, hour 2, has 2 (held on that side)."""
    from twin_core.settings import get_settings

    monkeypatch.setenv("TWIN_MONITOR_EMBEDDING_SAMPLE", "20")
    get_settings.cache_clear()
    check = hours(None, _no_retrieval(keep=25), _no_retrieval(keep=2), None)
    scored, current_held, reference_held = check(1), check(2), check(3)
    entry = scored["signals"]["retrieval_score"]
    assert (entry["status"], entry["rows"], entry["reference_rows"]) == ("scored", 25, 40)
    assert scored["verdict"] == "no_drift" and scored["held"] == []
    embedding = scored["signals"]["query_embedding"]  # embedded: a sample of 20 of the 40 queries per side
    assert (embedding["rows"], embedding["reference_rows"]) == (20, 20)
    # 2 of 40 retrieved a chunk: the coverage pages (its interval's upper bound 0.165 < 0.5)
    assert current_held["verdict"] == "drift" and [a["signal"] for a in current_held["alerts"]] == [
        "retrieval_coverage"
    ]
    assert current_held["signals"]["retrieval_coverage"]["detail"].startswith("2 of 40 requests retrieved a chunk")
    assert current_held["held"] == [
        {
            "signal": "retrieval_score",
            "reason": "2 retrieval scores in the window (of 40 requests; < 20): not enough data",
            "rows": 2,
            "reference_rows": 25,
        }
    ]
    assert reference_held["held"] == [
        {
            "signal": "retrieval_score",
            "reason": "2 retrieval scores in the reference (previous) (of 40 requests; < 20): not enough data",
            "rows": 40,
            "reference_rows": 2,
        }
    ]


def test_client_statuses_are_not_server_errors(hours: Any) -> None:
    check = hours(None, _status("rejected"), _status("cancelled"))
    for hour in (1, 2):
        result = check(hour)
        error_rate = result["signals"]["error_rate"]
        assert result["verdict"] == "no_drift" and result["alerts"] == [], result["drifted"]
        assert (error_rate["rows"], error_rate["failures"], error_rate["rate"]) == (28, 0, 0.0)
        assert error_rate["drifted"] is False


def test_more_server_errors_alert_with_their_rates_and_interval_a_recovery_does_not(hours: Any) -> None:
    from twin_core.monitoring.rates import newcombe

    def outage(rows: list[Any]) -> None:
        _status("error", 6)(rows)
        _status("unavailable", 6)(rows[6:])

    check = hours(None, outage, None)
    result = check(1)
    assert result["verdict"] == "drift" and [d["signal"] for d in result["drifted"]] == ["error_rate"]
    diff, low, high = newcombe(12, 40, 0, 40, 0.95)
    (alert,) = result["alerts"]
    assert alert["value"] == round(low, 6) == result["signals"]["error_rate"]["score"]
    assert low > 0.02 and alert["threshold"] == 0.02 and alert["drift_when"] == "above"
    assert alert["interval"] == [round(low, 6), round(high, 6)] and alert["confidence"] == 0.95
    assert (alert["rate"], alert["reference_rate"], alert["increase"]) == (0.3, 0.0, round(diff, 6))
    assert (alert["failures"], alert["reference_failures"], alert["rows"], alert["reference_rows"]) == (12, 0, 40, 40)
    assert alert["p_value"] is None and alert["method"] == "newcombe"
    assert alert["statistic"] == (
        "lower bound of the 95% Newcombe interval of the increase in the server error rate (current - reference)"
    )
    recovery = check(2)  # 12 of 40 failures the hour before, none now: fewer errors never alert
    error_rate = recovery["signals"]["error_rate"]
    assert recovery["verdict"] == "no_drift" and recovery["alerts"] == []
    assert error_rate["drifted"] is False and error_rate["score"] < 0 and error_rate["increase"] == -0.3


def test_newcombe_interval_matches_the_published_example() -> None:
    """Newcombe (1998), Statistics in Medicine 17:873, Table II (a): 56/70 - 48/80, method 10."""
    from twin_core.monitoring.rates import newcombe, wilson

    diff, low, high = newcombe(56, 70, 48, 80, 0.95)
    assert (round(diff, 4), round(low, 4), round(high, 4)) == (0.2, 0.0524, 0.3339)
    assert wilson(0, 10, 0.95)[0] == 0.0 and round(wilson(0, 10, 0.95)[1], 4) == 0.2775
    assert all(isinstance(x, float) for x in (diff, low, high, *wilson(3, 10, 0.95)))  # JSON-ready, not numpy


def _newcombe_by_definition(k1: int, n1: int, k2: int, n2: int, confidence: float) -> tuple[float, float, float]:
    """Newcombe's method 10 written out: Wilson score intervals of both shares, combined (Newcombe 1998)."""
    from math import sqrt
    from statistics import NormalDist

    z = NormalDist().inv_cdf(1 - (1 - confidence) / 2)

    def wilson(k: int, n: int) -> tuple[float, float]:
        p, denominator = k / n, 1 + z * z / n
        centre = (p + z * z / (2 * n)) / denominator
        half = z * sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denominator
        return max(0.0, centre - half), min(1.0, centre + half)

    (p1, (l1, u1)), (p2, (l2, u2)) = (k1 / n1, wilson(k1, n1)), (k2 / n2, wilson(k2, n2))
    return p1 - p2, p1 - p2 - sqrt((p1 - l1) ** 2 + (u2 - p2) ** 2), p1 - p2 + sqrt((u1 - p1) ** 2 + (p2 - l2) ** 2)


def test_the_library_intervals_are_newcombes_method_10_on_a_grid_with_its_edges() -> None:
    """statsmodels' ``newcomb`` (an API it marks experimental) is still the hybrid score method, sign
    ``p1 - p2``, including 0 and n failures on either side and one-request windows."""
    from twin_core.monitoring.rates import newcombe, wilson

    sizes = (1, 2, 7, 40)
    cases = [(k1, n1, k2, n2) for n1 in sizes for n2 in sizes for k1 in {0, 1, n1 // 2, n1} for k2 in {0, n2 // 2, n2}]
    for confidence in (0.9, 0.95, 0.99):
        for k1, n1, k2, n2 in cases:
            expected = _newcombe_by_definition(k1, n1, k2, n2, confidence)
            assert newcombe(k1, n1, k2, n2, confidence) == pytest.approx(expected, abs=1e-12), (k1, n1, k2, n2)
    assert newcombe(0, 40, 12, 40, 0.95)[1] < newcombe(0, 40, 12, 40, 0.95)[0] == -0.3  # current - reference
    assert wilson(40, 40, 0.95)[1] == 1.0 and wilson(0, 1, 0.95)[0] == 0.0


def test_outcome_of_each_logged_status() -> None:
    from twin_core.monitoring.scopes import outcome

    statuses = ("ok", "error", "unavailable", "rejected", "cancelled")
    assert [outcome(s) for s in statuses] == ["ok", "error", "error", None, None]


def test_a_p_value_signal_states_its_p_value_and_a_distance_none() -> None:
    import pandas as pd

    from twin_core.monitoring.config import _signal
    from twin_core.monitoring.drift import signal_entry
    from twin_core.monitoring.measures import Measure, ScopeData

    data = ScopeData("queries", "previous", pd.DataFrame({"query": ["a"] * 30}), pd.DataFrame({"query": ["b"] * 30}))
    spec = {"scope": "queries", "column": "query", "kind": "length"}
    ks = signal_entry(_signal("q", {**spec, "method": "ks", "threshold": 0.05}, "t"), data, Measure(30, 30, 0.01))
    assert (ks["p_value"], ks["drifted"], ks["drift_when"], ks["status"]) == (0.01, True, "below", "scored")
    wd = signal_entry(
        _signal("q", {**spec, "method": "wasserstein", "threshold": 1.0}, "t"), data, Measure(30, 30, 0.5)
    )
    assert (wd["p_value"], wd["interval"], wd["drifted"]) == (None, None, False)
    held = signal_entry(_signal("q", {**spec, "method": "ks", "threshold": 0.05}, "t"), data, Measure(3, 30, held="x"))
    assert (held["status"], held["skipped"], held["drifted"], held["score"]) == ("held", "x", None, None)


def test_a_distance_without_its_p_value_is_decided_within_its_threshold_and_held_beyond_it() -> None:
    """A permutation test that cannot run (e.g. one class in the classifier's held-out half) leaves the score
    without a p-value: a score within its threshold is "not drifted" (no p-value needed), one beyond it held."""
    import pandas as pd

    from twin_core.monitoring.config import _signal
    from twin_core.monitoring.drift import signal_entry
    from twin_core.monitoring.evidently_metrics import with_p_value
    from twin_core.monitoring.measures import Measure, ScopeData

    data = ScopeData("queries", "previous", pd.DataFrame({"query": ["a"] * 30}), pd.DataFrame({"query": ["b"] * 30}))
    signal = _signal("q", {"scope": "queries", "column": "query", "kind": "length", "method": "wasserstein",
                           "threshold": 1.0}, "t")  # fmt: skip

    def cannot() -> Any:
        raise ValueError("only one class")

    low = signal_entry(signal, data, with_p_value(Measure(30, 30, 0.5), signal, cannot))
    high = signal_entry(signal, data, with_p_value(Measure(30, 30, 2.5), signal, cannot))
    assert (low["status"], low["score"], low["drifted"], low["p_value"]) == ("scored", 0.5, False, None)
    assert low["detail"] == "no permutation p-value (only one class) on 30 and 30 values"
    assert (high["status"], high["score"], high["drifted"]) == ("held", 2.5, None)
    assert high["skipped"] == "distance 2.5 above the threshold 1 with no p-value: not decided"


def test_a_score_that_is_not_a_number_holds_the_signal() -> None:
    import pandas as pd

    from twin_core.monitoring.config import _signal
    from twin_core.monitoring.drift import signal_entry
    from twin_core.monitoring.measures import Measure, ScopeData, scored

    data = ScopeData("operations", "previous", pd.DataFrame({"latency_ms": [1.0] * 30}), pd.DataFrame())
    spec = {"scope": "operations", "column": "latency_ms", "kind": "numeric", "method": "wasserstein"}
    entry = signal_entry(_signal("latency_ms", {**spec, "threshold": 1.0}, "t"), data, scored(Measure(30, 30), "nan"))
    assert (entry["status"], entry["drifted"], entry["score"]) == ("held", None, None)
    assert entry["skipped"] == "the method gave no finite score ('nan') on 30 and 30 values"


def _latencies(values: Callable[[int, float], float]) -> Mutate:
    """Each request's total latency set to ``values(i, logged)``."""
    from twin_core.domain.inference import LatencyMs

    def mutate(rows: list[Any]) -> None:
        for i, row in enumerate(rows):
            row.latency_ms = LatencyMs(total=values(i, row.latency_ms.total))

    return mutate


def test_one_slow_request_in_a_small_window_is_noise_stated_with_its_p_value(hours: Any) -> None:
    """20 requests against 20: one request of 30 s in the window puts the latency's Wasserstein distance
    at 7.8 reference standard deviations (the threshold 1.0 paged on it before), but a 30 s request
    lands in either hour of the pooled 40 about as often: the permutation p-value is 0.12, not below
    alpha 0.05, so it does not drift, and says so."""
    slow = _latencies(lambda i, ms: 30_000.0 if i == 7 else ms)
    result = hours(_keep(20), _both(_keep(20), slow))(1)
    latency = result["signals"]["latency_ms"]
    assert (latency["rows"], latency["reference_rows"], latency["status"]) == (20, 20, "scored")
    assert latency["score"] > 7 * latency["threshold"]  # far above the threshold: the old rule drifted
    # p = 0.122 with the NumPy of this writing (its random streams may change across versions): not significant
    assert latency["p_value"] > 0.05 and (latency["permutations"], latency["permuted_rows"]) == (999, [20, 20])
    assert (latency["drifted"], latency["confidence"]) == (False, 0.95)
    assert latency["detail"] == (
        f"permutation test: p = {latency['p_value']:.4f} (999 permutations of 20 and 20 values; "
        "not significant at alpha 0.05)"
    )
    assert result["verdict"] == "no_drift" and result["drifted"] == [] and result["alerts"] == []


def test_a_real_shift_in_a_small_window_still_drifts_with_its_p_value_in_the_alert(hours: Any) -> None:
    """20 requests against 20, every latency doubled: far above the threshold and p = 1/1000 (no
    relabelling of the pooled 40 is as far apart): it drifts, and the alert carries the p-value, its
    permutations and the test in words (the notifier's message line prints ``detail``)."""
    result = hours(_keep(20), _both(_keep(20), _latencies(lambda i, ms: 2 * ms)))(1)
    assert result["verdict"] == "drift" and [d["signal"] for d in result["drifted"]] == ["latency_ms"]
    (alert,) = result["alerts"]
    assert alert["value"] > alert["threshold"] == 1.0 and alert["p_value"] == 0.001 < 1 - alert["confidence"]
    assert (alert["permutations"], alert["permuted_rows"], alert["rows"], alert["reference_rows"]) == (
        999, [20, 20], 20, 20,
    )  # fmt: skip
    assert alert["detail"] == (
        "permutation test: p = 0.0010 (999 permutations of 20 and 20 values; significant at alpha 0.05)"
    )
    assert alert["statistic"] == "Wasserstein distance in reference standard deviations"


def test_a_distance_above_its_threshold_between_two_draws_of_one_distribution_does_not_drift() -> None:
    """Both hours drawn from one heavy-tailed latency distribution (seeded lognormal, 20 a side): normed by
    the reference's small spread, the distance is 1.20 (> 1.0: the threshold alone drifted), p = 0.205."""
    import numpy as np
    import pandas as pd

    from twin_core.monitoring import TextTools
    from twin_core.monitoring.config import _signal
    from twin_core.monitoring.drift import signal_entry
    from twin_core.monitoring.evidently_metrics import value_scores
    from twin_core.monitoring.measures import ScopeData

    spec = {"scope": "operations", "column": "latency_ms", "kind": "numeric", "method": "wasserstein"}
    signal = _signal("latency_ms", {**spec, "threshold": 1.0}, "t")
    draws = np.random.default_rng(53).lognormal(7.3, 0.8, 40)
    data = ScopeData(
        "operations", "previous", pd.DataFrame({"latency_ms": draws[20:]}), pd.DataFrame({"latency_ms": draws[:20]})
    )
    tools = TextTools(embed=lambda texts: np.ones((len(texts), 8)), language=lambda _: "en", vocabulary=frozenset())
    found = value_scores([signal], data, tools, minimum=20)["latency_ms"]
    entry = signal_entry(signal, data, found)
    assert (round(entry["score"], 3), entry["permutations"]) == (1.202, 999)
    assert entry["p_value"] > 0.05  # 0.205 with the NumPy of this writing (its streams may change)
    assert (entry["status"], entry["drifted"], entry["rows"], entry["reference_rows"]) == ("scored", False, 20, 20)


def test_a_distance_above_its_threshold_without_a_p_value_is_held_not_decided() -> None:
    """Fail closed: a distance beyond its threshold is decided by its p-value; with none it is held (below
    the threshold it is "not drifted" whatever the p-value)."""
    import pandas as pd

    from twin_core.monitoring.config import _signal
    from twin_core.monitoring.drift import signal_entry
    from twin_core.monitoring.measures import Measure, ScopeData

    data = ScopeData("operations", "previous", pd.DataFrame({"latency_ms": [1.0] * 30}), pd.DataFrame())
    spec = {"scope": "operations", "column": "latency_ms", "kind": "numeric", "method": "wasserstein"}
    signal = _signal("latency_ms", {**spec, "threshold": 1.0}, "t")
    entry = signal_entry(signal, data, Measure(30, 30, 5.0))
    assert (entry["status"], entry["drifted"]) == ("held", None)
    assert entry["skipped"] == "distance 5 above the threshold 1 with no p-value: not decided"
    decided = signal_entry(signal, data, Measure(30, 30, 5.0, details={"p_value": 0.001}))
    assert (decided["status"], decided["drifted"], decided["p_value"]) == ("scored", True, 0.001)
    noise = signal_entry(signal, data, Measure(30, 30, 5.0, details={"p_value": 0.3}))
    assert (noise["status"], noise["drifted"]) == ("scored", False)
