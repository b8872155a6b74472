"""Drift checks on replayed synthetic traffic. The alerting reference is recent traffic (the previous
hour, or a pinned baseline hour): 24 stationary hours raise no alert, a shifted hour (other topics, half
German, longer answers) does, once, with its statistic and both sample sizes. The comparison with the
training data is an informational report that never alerts."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from support.synthetic_traffic import AUTHOR, PER_HOUR, SHIFTED_HOUR, STATIONARY_HOURS, T0

pytestmark = pytest.mark.slow  # loads the embedding model
TRAFFIC_SIGNALS = {
    "query_embedding",
    "query_length",
    "query_oov_share",
    "query_language",
    "answer_length",
    "answer_oov_share",
    "answer_language",
    "retrieval_score",
    "latency_ms",
    "error_rate",
    "retrieval_coverage",
}


@pytest.fixture
def check(monitored_home: dict[str, Any], tools: Any, hour_window: Any) -> Any:
    """``check(hour, **kwargs)``: run_drift_check over that hour of the fixture home."""
    from twin_core.monitoring import run_drift_check

    home = monitored_home
    return lambda hour, **kwargs: run_drift_check(
        home["settings"],
        hour_window(hour),
        tools=tools,
        warehouse=home["warehouse"],
        artifacts=home["artifacts"],
        **kwargs,
    )


def test_24_stationary_hours_raise_no_alert(check: Any) -> None:
    results = [check(hour, author=AUTHOR, alert=True) for hour in range(1, STATIONARY_HOURS)]
    assert len(results) == 24
    assert [r["verdict"] for r in results] == ["no_drift"] * 24, [r["drifted"] for r in results]
    assert sum(len(r["alerts"]) for r in results) == 0
    for r in results:  # every traffic signal was scored, on 40 requests against the 40 of the hour before
        assert set(r["signals"]) == TRAFFIC_SIGNALS and r["held"] == []
        assert {s["status"] for s in r["signals"].values()} == {"scored"}
        assert {s["rows"] for s in r["signals"].values() if s["scope"] != "answers"} == {PER_HOUR}
        assert {s["reference"] for s in r["signals"].values()} == {"previous"}
        assert r["reference"]["kind"] == "previous" and r["reference"]["requests"] == PER_HOUR


def test_shifted_hour_alerts_once_with_statistic_and_sample_sizes(
    check: Any, monitored_home: dict[str, Any], hour_window: Any
) -> None:
    first = check(SHIFTED_HOUR, alert=True)
    assert first["verdict"] == "drift"
    drifted = {d["signal"]: d for d in first["drifted"]}
    # new topics, another language, longer answers, lower retrieval scores
    assert {"query_embedding", "query_length", "query_language", "answer_length", "retrieval_score"} <= set(drifted)
    assert not {"latency_ms", "error_rate"} & set(drifted)  # same latency and error rate as the hour before
    assert [a["signal"] for a in first["alerts"]] == list(drifted)
    alert = first["alerts"][0]
    assert set(alert) == {
        "signal", "kind", "threshold", "value", "method", "drift_when", "statistic", "rows", "reference_rows",
        "reference", "window", "report", "html", "p_value", "interval", "confidence", "permutations", "permuted_rows",
        "detail",
    }  # fmt: skip
    assert {a["kind"] for a in first["alerts"]} == {"drift"}  # planned against the alert state: all new
    written = monitored_home["artifacts"].get_json(f"monitoring/all/{hour_window(SHIFTED_HOUR).key}/result.json")
    assert written["alerts"] == first["alerts"]  # result.json lists the due alerts, written once
    # a distance: the p-value of its permutation test (no relabelling of the pooled hours is as far apart)
    assert (alert["p_value"], alert["interval"], alert["confidence"], alert["permutations"]) == (0.001, None, 0.95, 999)
    for a in first["alerts"]:
        d = drifted[a["signal"]]
        assert (a["value"] > a["threshold"]) if a["drift_when"] == "above" else (a["value"] < a["threshold"])
        assert a["p_value"] == 0.001 < 1 - a["confidence"] and "permutation test: p = 0.0010" in a["detail"]
        assert a["rows"] == d["rows"] > 0 and a["reference_rows"] == d["reference_rows"] > 0
        assert a["reference"] == "previous"
    by_signal = {a["signal"]: a for a in first["alerts"]}
    assert by_signal["query_embedding"]["statistic"] == "cosine distance between the mean embeddings"
    assert by_signal["query_length"]["statistic"] == "Wasserstein distance in reference standard deviations"
    assert by_signal["query_length"]["rows"] == by_signal["query_length"]["reference_rows"] == PER_HOUR
    assert alert["window"]["start"] == "2026-11-23T11:00:00+00:00" and alert["window"]["length"] == "1h"
    again = check(SHIFTED_HOUR, alert=True)
    assert again["alerts"] == first["alerts"]  # nothing is marked as sent until it was delivered
    from twin_core.monitoring.alert_state import record_delivered

    delivered = [("drift", a["signal"]) for a in first["alerts"]]
    record_delivered(monitored_home["artifacts"], None, hour_window(SHIFTED_HOUR), delivered)
    again = check(SHIFTED_HOUR, alert=True)
    assert again["verdict"] == "drift" and again["alerts"] == []  # once per signal and window


def test_pinned_baseline_hour(check: Any) -> None:
    baseline_end = (T0.replace(hour=11)).isoformat()  # 10:00-11:00 on the first day
    quiet = check(SHIFTED_HOUR - 1, reference="baseline", baseline_end=baseline_end)
    assert quiet["reference"]["kind"] == "baseline" and quiet["verdict"] == "no_drift", quiet["drifted"]
    assert quiet["reference"]["window"]["key"] == "20261122T100000Z-1h"
    shifted = check(SHIFTED_HOUR, reference="baseline", baseline_end=baseline_end)
    assert {"query_embedding", "query_length", "retrieval_score"} <= {d["signal"] for d in shifted["drifted"]}


def test_training_comparison_is_informational_never_an_alert(monitored_home: dict[str, Any], check: Any) -> None:
    result = check(SHIFTED_HOUR, alert=True, reference="training")
    assert result["verdict"] == "informational"
    assert result["drifted"] == [] and result["alerts"] == []
    differences = {d["signal"] for d in result["differences"]}
    assert {"query_embedding", "query_length", "document_embedding"} <= differences
    assert result["reference"]["dataset_versions"] == [monitored_home["version"]]
    assert result["reference"]["new_documents"] == 6
    assert {s["scope"] for s in result["signals"].values()} == {"queries", "answers", "documents"}
    assert result["signals"]["document_embedding"]["reference"] == "training_corpus"
    folder = Path(result["report"])
    assert folder.name == "training" and folder.parent.name == "20261123T110000Z-1h"
    assert json.loads((folder / "result.json").read_text())["verdict"] == "informational"


def test_plots_are_optional_and_give_the_same_scores(monitored_home: dict[str, Any], check: Any) -> None:
    """By default Evidently's stattests run without its plotly reports (the costly part); ``plots=True``
    writes the HTML + JSON reports (t-SNE included) with the very same scores."""
    result = check(SHIFTED_HOUR)
    folder = Path(result["report"])
    assert folder == monitored_home["home"] / "artifacts" / "monitoring" / "all" / "20261123T110000Z-1h"
    assert result["reports"] == {} and [p.name for p in folder.glob("*.html")] == ["report.html"]
    with_plots = check(SHIFTED_HOUR, plots=True)
    names = {p.name for p in folder.iterdir()}
    for scope in ("queries", "answers", "operations", "query_embedding"):
        assert {f"{scope}.html", f"{scope}.json"} <= names, scope
    assert "<html" in (folder / "queries.html").read_text()[:2000].lower()
    page = (folder / "report.html").read_text()  # the check's own page links Evidently's reports beside it
    assert all(f'<a href="{name}.html">' in page for name in with_plots["reports"]), with_plots["reports"]
    assert "EmbeddingsDrift" in (folder / "query_embedding.json").read_text()
    assert {n: s["score"] for n, s in with_plots["signals"].items()} == {
        n: s["score"] for n, s in result["signals"].items()
    }
    stored = json.loads((folder / "result.json").read_text())
    assert stored["verdict"] == "drift" and stored["drifted"] == with_plots["drifted"]
