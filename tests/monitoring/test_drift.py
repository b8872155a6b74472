"""Drift checks on synthetic request logs: a window like the training data is quiet, a shifted one
(other topics, longer queries, lower retrieval scores, other new documents) drifts, alerts once."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

pytestmark = pytest.mark.slow  # loads the embedding model
AUTHOR = "Ada Quillfeather"


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


def test_window_like_the_reference_is_not_drift(monitored_home: dict[str, Any], check: Any) -> None:
    result = check(1, alert=True)
    assert result["verdict"] == "no_drift", result["drifted"]
    assert result["drifted"] == [] and result["alerts"] == []
    assert result["rows"] == 40
    assert result["reference"]["kind"] == "training"
    assert result["reference"]["dataset_versions"] == [monitored_home["version"]]
    signals = result["signals"]
    # every signal was computed: text vs training, operations vs the previous hour, documents vs the corpus
    assert {n for n, s in signals.items() if "skipped" in s} == set()
    assert signals["retrieval_score"]["reference"] == "previous"
    assert signals["document_embedding"]["reference"] == "training_corpus"
    assert result["reference"]["new_documents"] == 6
    assert not any(s["drifted"] for s in signals.values())


def test_shifted_window_is_drift_with_scores_and_thresholds(monitored_home: dict[str, Any], check: Any) -> None:
    result = check(2)
    assert result["verdict"] == "drift"
    drifted = {d["signal"]: d for d in result["drifted"]}
    # other topics, longer queries, lower retrieval scores, other new documents
    assert {"query_embedding", "query_length", "retrieval_score", "document_embedding"} <= set(drifted)
    # same latency and error rate as the hour before: not drift
    assert not {"latency_ms", "error_rate"} & set(drifted)
    for name, d in drifted.items():
        assert (d["score"] > d["threshold"]) if d["drift_when"] == "above" else (d["score"] < d["threshold"]), name
        assert d["threshold"] == result["signals"][name]["threshold"]
    assert drifted["query_embedding"]["method"] == "distance/cosine"
    assert result["alerts"] == []  # without --alert nothing is marked as alerted


def test_reports_are_evidently_html_and_json_in_the_artifact_store(monitored_home: dict[str, Any], check: Any) -> None:
    result = check(2)
    folder = Path(result["report"])
    assert folder == monitored_home["home"] / "artifacts" / "monitoring" / "all" / "20261122T120000Z-1h"
    names = {p.name for p in folder.iterdir()}
    for scope in ("queries", "answers", "operations", "documents", "query_embedding"):
        assert {f"{scope}.html", f"{scope}.json"} <= names, scope
    # 14 documents are too few for Evidently's embedding plot (t-SNE): scored by the same method, no report
    assert "document_embedding" not in result["reports"] and "document_embedding.html" not in names
    assert "<html" in (folder / "queries.html").read_text()[:2000].lower()
    snapshot = json.loads((folder / "query_embedding.json").read_text())
    assert "EmbeddingsDrift" in json.dumps(snapshot)
    stored = json.loads((folder / "result.json").read_text())
    assert stored["verdict"] == "drift" and stored["drifted"] == result["drifted"]


def test_alerts_once_per_signal_and_window(monitored_home: dict[str, Any], check: Any) -> None:
    first = check(2, author=AUTHOR, alert=True)
    assert first["verdict"] == "drift"
    assert [a["signal"] for a in first["alerts"]] == [d["signal"] for d in first["drifted"]]
    alert = first["alerts"][0]
    assert set(alert) == {"signal", "threshold", "value", "method", "drift_when", "window", "report"}
    assert alert["window"]["start"] == "2026-11-22T12:00:00+00:00" and alert["window"]["length"] == "1h"
    assert alert["report"].endswith("monitoring/ada-quillfeather/20261122T120000Z-1h")
    again = check(2, author=AUTHOR, alert=True)
    assert again["verdict"] == "drift" and again["alerts"] == []


def test_previous_reference(monitored_home: dict[str, Any], check: Any) -> None:
    quiet = check(1, reference="previous")
    assert quiet["reference"]["kind"] == "previous" and quiet["verdict"] == "no_drift", quiet["drifted"]
    shifted = check(2, reference="previous")
    assert {"query_embedding", "query_length", "retrieval_score"} <= {d["signal"] for d in shifted["drifted"]}
