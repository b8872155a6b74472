"""The gate's decisions are statistics: an absolute bound (min / max) is decided on the interval of the
candidate's mean, never on the mean alone, and the report's numbers are those of the paired rows the
decision used (evaluation/gate.py, eval_report.py, cli/evaluate.py)."""

from __future__ import annotations

import re
from typing import Any

import pytest

from twin_core.evaluation.config import METRICS, EvalConfig, Rule
from twin_core.evaluation.gate import apply_gate

CFG = EvalConfig(min_rows=6, rules=(Rule("style_distance", "lower", max=1.0),))
BASE = {"style_distance": [0.5] * 6}


def test_a_max_bound_cleared_by_the_mean_alone_fails_on_its_interval() -> None:
    # mean 0.85 <= 1.0, but half the rows are 1.6: the interval of the mean reaches above 1.0
    noisy = apply_gate({"style_distance": [0.4, 1.6, 0.4, 1.6, 0.4, 0.7]}, BASE, CFG)
    check = noisy.checks[0]
    assert (noisy.passed, check.outcome, check.rows) == (False, "fail", 6)
    assert check.candidate == pytest.approx(0.85) and check.candidate_high > 1.0 and check.candidate_low < 0.85
    assert check.reason == f"candidate mean CI high end {check.candidate_high:.4g} > 1"
    # rows that all sit well below the bound pass, and state the interval they passed on
    tight = apply_gate({"style_distance": [0.5, 0.6, 0.5, 0.6, 0.5, 0.6]}, BASE, CFG)
    row = tight.as_dict()["checks"][0]
    assert tight.passed and row["outcome"] == "pass" and 0.5 <= row["candidate_low"] <= row["candidate_high"] <= 0.6


def test_a_min_bound_is_decided_on_the_low_end() -> None:
    cfg = EvalConfig(min_rows=6, rules=(Rule("rouge_l", "higher", min=0.3),))
    base = {"rouge_l": [0.3] * 6}
    # mean 0.35 >= 0.3, but two rows at 0: not shown to be above 0.3
    check = apply_gate({"rouge_l": [0.0, 0.0, 0.5, 0.5, 0.55, 0.55]}, base, cfg).checks[0]
    assert check.outcome == "fail" and check.candidate_low < 0.3 < check.candidate
    # an identical candidate whose every row is 0.3: the interval is [0.3, 0.3], within the bound
    same = apply_gate(base, base, cfg).checks[0]
    assert (same.outcome, same.candidate_low, same.candidate_high) == ("pass", 0.3, 0.3)


def _report(gate: dict[str, Any], metrics: dict[str, dict[str, Any]]) -> dict[str, Any]:
    return {
        "candidate": {"ref": "ada/v0002"},
        "baseline": {"ref": "ada/v0001", "note": ""},
        "author": "Ada",
        "dataset_version": "d1",
        "rows": 4,
        "gate": gate,
        "metrics": metrics,
        "stylometry": {"measure": "Delta", "reference_texts": 4, "distance": {"candidate": None, "baseline": None},
                       "authors": ["ada"], "attribution_share": None},
        "perplexity": {},
        "rag": {"status": "missing", "reason": "no vector store given", "k": 5},
        "judge": {"name": "off", "status": "off", "calls": 0, "failures": 0, "reason": None},
        "samples": [],
        "seconds": {},
    }  # fmt: skip


def _cells(html: str, label: str) -> list[str]:
    row = re.search(r"<tr><td>" + re.escape(label) + r"</td>(.*?)</tr>", html, re.DOTALL)
    assert row, label
    return [re.sub(r"\s+", " ", c).strip() for c in re.findall(r"<td[^>]*>(.*?)</td>", row.group(1), re.DOTALL)]


def test_the_html_report_shows_the_paired_means_and_the_candidate_interval() -> None:
    from twin_core.evaluation.eval_report import render_html

    cfg = EvalConfig(min_rows=3, rules=(Rule("rouge_l", "higher", min_delta=-0.02), Rule("style_distance", "lower",
                                                                                          max=1.0)))  # fmt: skip
    cand = {"rouge_l": [1.0, 0.2, 0.2, 0.2], "style_distance": [0.5, 0.6, 0.5, 0.6]}
    base = {"rouge_l": [None, 0.2, 0.2, 0.2], "style_distance": [0.5, 0.5, 0.5, 0.5]}
    gate = apply_gate(cand, base, cfg).as_dict()
    # the means over every row each model answered: the candidate's 0.4 includes a row the baseline lacks
    means = {"candidate": {"rouge_l": 0.4, "style_distance": 0.55}, "baseline": {"rouge_l": 0.2, "style_distance": 0.5}}
    metrics = {role: {**dict.fromkeys(METRICS), **values} for role, values in means.items()}
    html = render_html(_report(gate, metrics))
    rouge = _cells(html, "ROUGE-L F1 vs the author&#39;s answer")
    assert rouge[1:5] == ["0.2", "0.2", "3", "0 [0, 0]"]  # the 3 paired rows the decision used
    style = _cells(html, "Style distance (Burrows&#39; Delta vs the author&#39;s held-out text)")
    c = gate["checks"][1]
    assert style[1] == f"0.55 [{c['candidate_low']:.4g}, {c['candidate_high']:.4g}]" and style[3] == "4"


def test_the_cli_table_and_result_line_state_the_candidate_interval() -> None:
    from twin_core.cli.evaluate import _result_line

    gate = apply_gate({"style_distance": [0.5, 0.6, 0.5, 0.6, 0.5, 0.6]}, BASE, CFG).as_dict()
    report = _report(gate, {"candidate": {}, "baseline": {}})
    report.update(stylometry={}, judge={"name": "off", "status": "off", "calls": 0, "failures": 0, "reason": None})
    line = _result_line(report, {})["gate_checks"]["style_distance"]
    assert line["rows"] == 6 and line["candidate_low"] == gate["checks"][0]["candidate_low"]
    assert line["candidate_high"] == gate["checks"][0]["candidate_high"] <= 0.6
