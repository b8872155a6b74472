"""Evaluation: metrics, judge parsing, the gate, and evaluate() end to end with injected models."""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path
from typing import Any

import pytest
from eval_fixtures import AUTHOR, ROWS, FakeLLM, fake_model_folder, register, write_dataset

REFERENCES = {q: a for _, q, a, _, _ in ROWS}


def bow_embed(texts: list[str]) -> list[list[float]]:
    """Unit-normalized bag of words over a hashed vocabulary (deterministic, no model)."""
    out = []
    for text in texts:
        vec = [0.0] * 64
        for word in text.lower().split():
            vec[sum(map(ord, word)) % 64] += 1.0
        norm = math.sqrt(sum(v * v for v in vec)) or 1.0
        out.append([v / norm for v in vec])
    return out


def retrieve(query: str, author: str, k: int) -> list[dict[str, Any]]:
    """The right document at rank 1 for r1, rank 2 for r2, absent for r3."""
    docs = {r[1]: r for r in ROWS}
    row = docs[query]
    other = {"document_id": "doc-other", "link": "https://ada.example/other", "text": "unrelated text about cats"}
    right = {"document_id": row[3], "link": row[4], "text": row[2]}
    if row[0] == "r1":
        return [right, other][:k]
    if row[0] == "r2":
        return [other, right][:k]
    return [other][:k]


@pytest.fixture
def setup(settings: Any, tmp_path: Path) -> dict[str, Any]:
    dataset = write_dataset(settings)
    base_folder = fake_model_folder(tmp_path, "base")  # resolve_base accepts a folder with config.json
    cand = register(settings, fake_model_folder(tmp_path, "cand"), dataset, str(base_folder / "merged"))
    models = {
        # the candidate answers like the author; the base model does not
        cand.ref: FakeLLM(cand.ref, answers=REFERENCES),
        "base": FakeLLM("base", default="As an AI, I think databases are a complex and multifaceted topic."),
    }

    def load_model(_settings: Any, location: str, version: str) -> Any:
        return models[version] if version in models else models["base"]

    return {"dataset": dataset, "cand": cand, "models": models, "load_model": load_model}


def _tools(setup: dict[str, Any], judge: Any = None) -> Any:
    from twin_core.evaluation.judge import Judge
    from twin_core.evaluation.run import Tools

    return Tools(embed=bow_embed, retrieve=retrieve, judge=judge or Judge(None, "off"), load_model=setup["load_model"])


def test_metrics_exact_values() -> None:
    from twin_core.evaluation import metrics as m

    assert m.rouge_l(["the cat sat on the mat", None], ["the cat sat on the mat", "x"]) == [1.0, None]
    ranks = [1, 2, None, 6]
    assert m.hit_at_k(ranks, 5) == 0.5
    assert m.mrr(ranks, 5) == pytest.approx((1 + 0.5) / 4)
    assert m.groundedness("Kafka streams events to consumers", ["Kafka is a log that streams events"]) == 0.75
    assert m.groundedness("anything", []) is None
    assert m.mean([None, 1.0, 3.0]) == 2.0 and m.mean([None]) is None
    hits = [{"document_id": "a", "link": "x"}, {"document_id": "b", "link": "y"}]
    assert m.first_relevant_rank(hits, "b", None) == 2 and m.first_relevant_rank(hits, "z", "x") == 1


def test_judge_parsing() -> None:
    from twin_core.evaluation.judge import parse_scores

    reply = 'Sure. {"accuracy": {"analysis": "ok", "score": 2}, "style": {"analysis": "fine", "score": 3}}'
    assert parse_scores(reply) == {"accuracy": 2, "style": 3}
    assert parse_scores("Accuracy: 2/3. Style: 1") == {"accuracy": 2, "style": 1}
    assert parse_scores('{"accuracy": {"score": 7}}') == {"accuracy": None, "style": None}
    assert parse_scores("no idea") == {"accuracy": None, "style": None}


def _cfg(settings: Any, **changes: Any) -> Any:
    from twin_core.evaluation.config import load_eval_config

    return dataclasses.replace(load_eval_config(settings), min_rows=3, **changes)


def test_gate_paired_intervals(settings: Any) -> None:
    from twin_core.evaluation.config import Rule
    from twin_core.evaluation.gate import apply_gate

    rules = (
        Rule("perplexity", "lower", max_ratio=1.02),
        Rule("rouge_l", "higher", min_delta=-0.02),
        Rule("judge_style", "higher", min_delta=0.0, required=False),
    )
    cfg = _cfg(settings, rules=rules)
    base = {"perplexity": [10.0, 12.0, 8.0, 11.0], "rouge_l": [0.3, 0.5, 0.1, 0.4], "judge_style": [None] * 4}
    same = apply_gate(base, base, cfg)  # the baseline against itself: not worse, every interval [0, 0]
    assert same.passed and same.failing == [] and same.missing == ["judge_style"]
    rouge = next(c for c in same.checks if c.metric == "rouge_l")
    assert (rouge.rows, rouge.diff, rouge.low, rouge.high) == (4, 0.0, 0.0, 0.0)
    better = apply_gate(base, base, dataclasses.replace(cfg, rules=(Rule("rouge_l", "higher", decide="better"),)))
    assert not better.passed and better.failing == ["rouge_l"]  # never "better" than itself
    worse = {**base, "perplexity": [11.0, 13.0, 9.0, 12.0]}  # every row worse by ~10 %
    bad = apply_gate(worse, base, cfg)
    assert not bad.passed and bad.failing == ["perplexity"]
    ppl = next(c for c in bad.checks if c.metric == "perplexity")
    assert ppl.high < 0 and ppl.bound == pytest.approx(-math.log(1.02))
    # a row missing for one model drops out of both (paired); lower-is-better honoured on a plain delta
    lower = dataclasses.replace(cfg, rules=(Rule("perplexity", "lower", min_delta=0.0, decide="better"),))
    gain = apply_gate({"perplexity": [9.0, 11.0, None, 10.0]}, base, lower)
    assert gain.passed and gain.checks[0].rows == 3 and gain.checks[0].low == pytest.approx(1.0)
    required_missing = apply_gate({**base, "rouge_l": [None] * 4}, base, cfg)
    assert not required_missing.passed and required_missing.failing == ["rouge_l"]
    nothing = {"perplexity": [None] * 4, "rouge_l": [None] * 4, "judge_style": [None] * 4}
    none_cfg = dataclasses.replace(cfg, rules=(rules[2],))
    assert apply_gate(nothing, base, none_cfg).passed is False  # every metric missing: fail


def test_bad_gate_config_is_a_config_error(settings: Any, tmp_path: Path) -> None:
    from twin_core.errors import ConfigError
    from twin_core.evaluation.config import load_eval_config

    bad = tmp_path / "eval.yaml"
    bad.write_text("gate:\n  metrics:\n    rouge_l: {better: sideways, min: 0}\n")
    with pytest.raises(ConfigError, match="better must be higher or lower"):
        load_eval_config(settings, bad)


def test_gate_needs_min_rows_paired_rows(settings: Any) -> None:
    """A metric measured on fewer than min_rows paired rows is not decided on: required -> missing (the
    gate fails closed, naming rows and minimum), optional -> skipped."""
    from twin_core.evaluation.config import Rule
    from twin_core.evaluation.gate import apply_gate

    rules = (Rule("rouge_l", "higher", min_delta=-0.02), Rule("judge_style", "higher", min_delta=0.0, required=False))
    cfg = _cfg(settings, rules=rules)  # min_rows 3
    base = {"rouge_l": [0.3, 0.5, 0.1, 0.4], "judge_style": [2.0, 2.0, 3.0, 1.0]}
    cand = {"rouge_l": [0.9, 0.9, None, None], "judge_style": [3.0, None, None, 3.0]}  # 2 paired rows each
    res = apply_gate(cand, base, cfg)
    assert res.passed is False and res.failing == ["rouge_l"] and res.missing == ["rouge_l", "judge_style"]
    assert [(c.outcome, c.rows, c.diff, c.reason) for c in res.checks] == [
        ("missing", 2, None, "2 paired rows, fewer than 3 (min_rows 3, set by the caller)"),
        ("skipped", 2, None, "2 paired rows, fewer than 3 (min_rows 3, set by the caller)"),
    ]
    assert res.as_dict()["min_rows"] == 3
    cli = load_cfg(settings).with_options(min_rows=3)
    reason = apply_gate(cand, base, dataclasses.replace(cli, rules=rules)).checks[0].reason
    assert reason == "2 paired rows, fewer than 3 (min_rows 3, --min-rows)"
    full = apply_gate({**cand, "rouge_l": [0.9, 0.9, 0.9, None]}, base, cfg)  # 3 paired rows: decided
    assert full.passed is True and full.checks[0].outcome == "pass" and full.checks[0].rows == 3


def load_cfg(settings: Any) -> Any:
    from twin_core.evaluation.config import load_eval_config

    return load_eval_config(settings)


def test_max_rows_below_min_rows_is_refused_before_any_model(settings: Any, setup: dict[str, Any]) -> None:
    """min_rows counts the rows left after the max_rows cut: the gate never decides on fewer."""
    from twin_core.errors import InputError
    from twin_core.evaluation.run import check_inputs, evaluate

    cfg = _cfg(settings, max_rows=2)  # the dataset holds out 3 rows; min_rows 3
    expected = (
        f"max_rows 2 (set by the caller) keeps 2 of the 3 held-out rows of dataset {setup['dataset']}; the "
        "evaluation needs at least 3 (set by the caller): raise max_rows (0 = all) or lower min_rows"
    )
    with pytest.raises(InputError) as err:
        check_inputs(settings, setup["cand"].ref, "base", cfg)
    assert str(err.value) == expected
    with pytest.raises(InputError, match="keeps 2 of the 3"):
        evaluate(settings, setup["cand"].ref, "base", tools=_tools(setup), config=cfg)
    assert all(model.calls == 0 for model in setup["models"].values())  # no model asked anything
    source = load_cfg(settings).source
    with pytest.raises(InputError) as err:
        load_cfg(settings).with_options(max_rows=2)
    assert str(err.value) == (
        f"max_rows 2 (--max-rows) is below min_rows 20 (samples.min_rows in {source}), the fewest rows the gate "
        "decides on: raise max_rows (0 = all rows) or lower min_rows"
    )
    with pytest.raises(InputError) as err:
        load_cfg(settings).with_options(max_rows=2, min_rows=3)
    assert str(err.value) == (
        "max_rows 2 (--max-rows) is below min_rows 3 (--min-rows), the fewest rows the gate decides on: "
        "raise max_rows (0 = all rows) or lower min_rows"
    )
    with pytest.raises(InputError) as err:
        load_cfg(settings).with_options(min_rows=0)
    assert str(err.value) == "min_rows 0 (--min-rows): the gate needs at least 1 row"
    ok = load_cfg(settings).with_options(max_rows=0, min_rows=3)  # 0 = every held-out row
    assert (ok.max_rows, ok.min_rows, ok.origin("min_rows"), ok.origin("max_rows")) == (
        0,
        3,
        "--min-rows",
        "--max-rows",
    )
    assert len(check_inputs(settings, setup["cand"].ref, "base", ok).eval_set.rows) == 3


@pytest.mark.parametrize(
    ("text", "error"),
    [
        ("- samples\n- gate\n", "must be a mapping (got list)"),
        ("samples: [1, 2]\n", "samples must be a mapping (got list)"),
        ("gate:\n  confidence: 7\n", "gate.confidence must be between 0 and 1, e.g. 0.95 (got 7.0)"),
        ("gate:\n  confidence: 0\n", "gate.confidence must be between 0 and 1, e.g. 0.95 (got 0.0)"),
        ("gate:\n  confidence: high\n", "gate.confidence must be a number (got 'high')"),
        (
            "gate:\n  metrics:\n    rouge_L: {better: higher, min_delta: 0, required: false}\n",
            "gate.metrics.rouge_L: unknown metric (known: perplexity, topic_similarity, rouge_l, style_distance, "
            "attribution, judge_accuracy, judge_style, groundedness)",
        ),
        ("gate:\n  metrics: [rouge_l]\n", "gate.metrics must be a mapping (got list)"),
        ("samples:\n  min_rows: 0\n", "samples.min_rows 0: the gate needs at least 1 row"),
        ("samples:\n  max_rows: -1\n", "samples.max_rows -1: expected 0 (all rows) or more"),
        (
            "samples:\n  max_rows: 5\n  min_rows: 10\n",
            "samples.max_rows 5 is below samples.min_rows 10, the fewest rows the gate decides on: raise max_rows "
            "(0 = all rows) or lower min_rows",
        ),
        ("samples:\n  min_row: 5\n", "samples: unknown keys ['min_row']"),
        ("sample:\n  min_rows: 5\n", "unknown sections ['sample']"),
    ],
)
def test_invalid_eval_config_is_a_config_error_naming_file_and_key(
    settings: Any, tmp_path: Path, text: str, error: str
) -> None:
    from twin_core.errors import ConfigError
    from twin_core.evaluation.config import load_eval_config

    path = tmp_path / "eval.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError) as err:
        load_eval_config(settings, path)
    assert str(err.value).startswith(f"{path}: ") and error in str(err.value)


def test_metric_names_are_the_evaluations(settings: Any) -> None:
    from twin_core.evaluation import run
    from twin_core.evaluation.config import METRICS

    assert run.METRICS is METRICS
    assert {r.metric for r in load_cfg(settings).rules} <= set(METRICS)  # the repository's config loads


def test_evaluate_against_base(settings: Any, setup: dict[str, Any]) -> None:
    from twin_core.evaluation.run import evaluate

    res = evaluate(settings, setup["cand"].ref, "base", tools=_tools(setup), config=_cfg(settings))
    assert res.baseline.ref.startswith("base:") and res.rows == 3 and res.author == AUTHOR
    cand, base = res.metrics["candidate"], res.metrics["baseline"]
    assert cand["rouge_l"] == pytest.approx(1.0) and base["rouge_l"] < 0.2
    assert cand["topic_similarity"] == pytest.approx(1.0) and base["topic_similarity"] < cand["topic_similarity"]
    assert res.stylometry["distance"]["candidate"] < res.stylometry["distance"]["baseline"]
    assert res.stylometry["attribution_share"] is None  # one author
    assert cand["perplexity"] is None  # fake models have no logits
    assert res.rag["status"] == "ok" and res.rag["hit_at_k"] == pytest.approx(2 / 3)
    assert res.rag["mrr"] == pytest.approx((1 + 0.5) / 3)
    # r1/r2 retrieve their own document: the author's answer is fully grounded; r3 retrieved cat text
    assert res.samples[0]["candidate"]["groundedness"] == 1.0
    assert res.judge["status"] == "off" and cand["judge_accuracy"] is None
    # perplexity is required: fake models have none, so the gate fails closed on it
    assert res.gate["passed"] is False and res.gate["failing"] == ["perplexity"]
    assert res.gate["missing"] == ["perplexity", "attribution", "judge_accuracy", "judge_style"]
    rouge = next(c for c in res.gate["checks"] if c["metric"] == "rouge_l")
    assert rouge["rows"] == 3 and rouge["outcome"] == "pass" and rouge["low"] > 0


def test_evaluate_production_baseline_falls_back_to_base(settings: Any, setup: dict[str, Any]) -> None:
    from twin_core.evaluation.run import evaluate

    res = evaluate(settings, setup["cand"].ref, "production", tools=_tools(setup), config=_cfg(settings))
    assert res.baseline.ref.startswith("base:") and "no production version" in res.baseline.note


def test_judge_down_is_missing_and_gate_uses_the_rest(settings: Any, setup: dict[str, Any]) -> None:
    from twin_core.evaluation.judge import Judge
    from twin_core.evaluation.run import evaluate

    dead = FakeLLM("judge", fail=True)
    judge = Judge(dead, "dead endpoint", max_failures=2)
    res = evaluate(settings, setup["cand"].ref, "base", tools=_tools(setup, judge), config=_cfg(settings))
    # an endpoint is judged one answer at a time: given up after 2 failed calls, no call for the baseline
    assert res.judge["status"] == "unavailable" and dead.calls == 2
    assert res.metrics["candidate"]["judge_accuracy"] is None  # missing, never 0
    assert res.gate["failing"] == ["perplexity"] and "judge_style" in res.gate["missing"]


def test_an_endpoint_judge_is_given_up_after_max_failures_not_after_a_batch() -> None:
    """An endpoint has no batching: its answers went out a whole batch (16) at a time, each call waiting out its
    timeout and retries, before "max_consecutive_failures: 3" was looked at. Now one at a time: 3 calls."""
    from twin_core.evaluation.judge import Judge

    dead = FakeLLM("judge", fail=True)
    judge = Judge(dead, "dead endpoint", max_failures=3)
    scores = judge.score_batch([("q", "an answer", "ref")] * 10, batch_size=16)
    assert dead.calls == 3 and scores == [{"accuracy": None, "style": None}] * 10
    summary = judge.summary()
    assert summary["status"] == "unavailable" and summary["calls"] == 3 and summary["failures"] == 3
    assert summary["reason"].startswith("3 failed calls in a row; last: BackendUnavailable: judge endpoint")


def test_an_endpoint_judge_refusing_for_want_of_a_key_names_the_variable(
    settings: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An OpenAI-compatible judge without TWIN_EVAL_JUDGE_API_KEY answers 401: the judge is unavailable after
    max_failures calls, and its reason names the variable to set."""
    from twin_core.errors import InputError
    from twin_core.evaluation.judge import open_judge
    from twin_core.llm.openai import OpenAICompatibleLLM
    from twin_core.settings import load_settings

    calls = []

    def refuse(self: Any, messages: Any, **kwargs: Any) -> Any:
        calls.append(1)
        raise InputError(f"LLM endpoint {self.base_url}/chat/completions refused the request: HTTP 401 no key")

    monkeypatch.setattr(OpenAICompatibleLLM, "chat", refuse)
    monkeypatch.setenv("TWIN_EVAL_JUDGE_BASE_URL", "https://api.openai.com/v1")
    monkeypatch.delenv("TWIN_EVAL_JUDGE_API_KEY", raising=False)
    judge = open_judge(load_settings(), max_failures=3)
    judge.score_batch([("q", "an answer", "ref")] * 5, batch_size=16)
    assert len(calls) == 3 and judge.summary()["reason"] == (
        "3 failed calls in a row; last: InputError: LLM endpoint https://api.openai.com/v1/chat/completions refused "
        "the request: HTTP 401 no key (TWIN_EVAL_JUDGE_API_KEY is not set: the endpoint wants a key)"
    )


def test_judge_down_fail_closed(settings: Any, setup: dict[str, Any]) -> None:
    from twin_core.evaluation.judge import Judge
    from twin_core.evaluation.run import evaluate

    cfg = _cfg(settings, rules=tuple(dataclasses.replace(r, required=True) for r in _cfg(settings).rules))
    judge = Judge(FakeLLM("judge", fail=True), "dead endpoint")
    res = evaluate(settings, setup["cand"].ref, "base", tools=_tools(setup, judge), config=cfg)
    assert res.gate["passed"] is False
    assert res.gate["failing"] == ["perplexity", "attribution", "judge_accuracy", "judge_style"]


def test_working_judge_scores(settings: Any, setup: dict[str, Any]) -> None:
    from twin_core.evaluation.judge import Judge
    from twin_core.evaluation.run import evaluate

    reply = '{"accuracy": {"analysis": "", "score": 3}, "style": {"analysis": "", "score": 2}}'
    judge = Judge(FakeLLM("judge", default=reply), "fake judge")
    res = evaluate(settings, setup["cand"].ref, "base", tools=_tools(setup, judge), config=_cfg(settings))
    assert res.metrics["candidate"]["judge_accuracy"] == 3.0 and res.metrics["baseline"]["judge_style"] == 2.0
    assert res.judge["status"] == "ok" and res.judge["calls"] == 6


def test_report_json_html_and_comet_offline(settings: Any, setup: dict[str, Any], monkeypatch: Any) -> None:
    import json

    from twin_core.evaluation.eval_report import write_report
    from twin_core.evaluation.run import evaluate

    monkeypatch.delenv("COMET_API_KEY", raising=False)
    res = evaluate(settings, setup["cand"].ref, "base", tools=_tools(setup), config=_cfg(settings))
    stored = write_report(settings, res.as_dict())
    assert stored["artifact"] == "evaluations/ada-quillfeather/v0001/v0001"
    report = json.loads(Path(stored["json"]).read_text())
    assert report["gate"]["decision"] == "fail" and report["comet"]["mode"] == "offline"
    html = Path(stored["html"]).read_text()
    assert "Gate: <b>FAIL</b>" in html and "paired rows" in html and "Burrows&#39; Delta" in html
    assert "[0." in html  # an interval
    assert "ROUGE-L F1" in html and "&lt;" not in REFERENCES[ROWS[0][1]]
    archive = Path(stored["json"]).parent / report["comet"]["archive"]
    assert archive.is_file() and archive.suffix == ".zip"


def test_report_says_why_the_gate_failed_and_what_it_decided_without(settings: Any, setup: dict[str, Any]) -> None:
    """The judge down: its checks say so (not only "0 paired rows"), in the result and the HTML page, which lists
    each failing metric with its paired rows, interval and reason, and the optional metrics it decided without."""
    from twin_core.evaluation.eval_report import render_html
    from twin_core.evaluation.judge import Judge
    from twin_core.evaluation.run import evaluate

    judge = Judge(FakeLLM("judge", fail=True), "dead endpoint", max_failures=2)
    res = evaluate(settings, setup["cand"].ref, "base", tools=_tools(setup, judge), config=_cfg(settings))
    checks = {c["metric"]: c for c in res.gate["checks"]}
    down = "judge unavailable: 2 failed calls in a row; last: BackendUnavailable: judge endpoint: connection refused"
    assert checks["judge_accuracy"]["outcome"] == "skipped"
    assert checks["judge_accuracy"]["reason"] == f"{down}; 0 paired rows, fewer than 3 (min_rows 3, set by the caller)"
    assert checks["perplexity"]["outcome"] == "missing"  # the fake models give no perplexity: a required metric
    html = render_html({**res.as_dict(), "created_at": "now"})
    assert "Gate: <b>FAIL</b> on 3 held-out rows" in html
    assert (
        "<li><b>perplexity</b>\nmissing (required: fails closed) on 0 paired rows:\n"
        "0 paired rows, fewer than 3 (min_rows 3, set by the caller)</li>"
    ) in html
    assert "Decided without these optional metrics, their data missing:" in html
    assert f"<li><b>judge_style</b>: {down}; 0 paired rows" in html


def test_unknown_version_and_empty_split(settings: Any, tmp_path: Path) -> None:
    from twin_core.errors import InputError
    from twin_core.evaluation.run import check_inputs

    with pytest.raises(InputError, match="unknown model version"):
        check_inputs(settings, "ada-quillfeather/v0042")
    dataset = write_dataset(settings, empty_test=True)
    mv = register(settings, fake_model_folder(tmp_path, "c"), dataset, "x")
    with pytest.raises(InputError, match="holds out 0 usable rows"):
        check_inputs(settings, mv.ref)
    full = register(settings, fake_model_folder(tmp_path, "d"), write_dataset(settings), "x")
    with pytest.raises(InputError, match="holds out 3 usable rows .* at least 20"):
        check_inputs(settings, full.ref)  # default min_rows 20


OSKAR = [
    "So it is, and if not, then it is what it is, which is to say not much, if you ask me.",
    "If it is late, it is not because we are slow but because it is hard, which is fine by me.",
    "Which is why, if you ask me, it is not so much a question as it is a habit, and so it is.",
]


def test_two_authors_attribution_and_other_twins_perplexity(
    settings: Any, setup: dict[str, Any], tmp_path: Path
) -> None:
    """A second author with a production twin: attribution is measured (Ada's own answers are Ada's) and
    the other author's twin is scored on Ada's held-out text."""
    from eval_fixtures import _parquet

    from twin_core.evaluation.run import evaluate
    from twin_core.stores.artifacts import open_artifact_store
    from twin_core.stores.registry import open_registry

    rows = [
        {"id": f"o{i}", "instruction": f"q{i}?", "answer": a, "document_id": f"od{i}", "link": f"https://o/{i}"}
        for i, a in enumerate(OSKAR)
    ]
    av = open_artifact_store(settings).put_version(
        "datasets/instruct/oskar-brennmoor",
        {"train.parquet": _parquet(rows), "test.parquet": _parquet(rows)},
        {"author": "Oskar Brennmoor", "author_slug": "oskar-brennmoor", "kind": "instruct"},
    )
    registry = open_registry(settings)
    twin = registry.register(
        "Oskar Brennmoor",
        fake_model_folder(tmp_path, "oskar"),
        {"base_model": "x", "dataset_versions": [f"instruct/oskar-brennmoor/{av.version}"], "kind": "sft"},
    )
    registry.set_stage(twin.ref, "production", "test")
    res = evaluate(settings, setup["cand"].ref, "base", tools=_tools(setup), config=_cfg(settings))
    assert res.stylometry["authors"] == ["ada-quillfeather", "oskar-brennmoor"]
    assert res.stylometry["attribution_share"]["candidate"] == 1.0  # the author's own words: all Ada's
    assert [s["candidate"]["attribution"] for s in res.samples] == [1.0, 1.0, 1.0]
    assert res.stylometry["attribution_rows"] == {"candidate": 3, "baseline": 3}
    # 3 of 3: Wilson's 95 % interval still reaches down to 44 %
    assert res.stylometry["attribution_ci95"]["candidate"] == [0.4385, 1.0]
    # the measure's own accuracy, on held-out pieces as long as the candidate's answers (median 20 words)
    calibration = res.stylometry["attribution_calibration"]
    assert (calibration["words"], calibration["accuracy"]) == (20, 1.0)
    assert {a: (v["snippets"], v["correct"]) for a, v in calibration["authors"].items()} == {
        "ada-quillfeather": (2, 2),
        "oskar-brennmoor": (3, 3),
    }
    from twin_core.evaluation.eval_report import render_html

    html = render_html(res.as_dict())
    assert "attributes\n20-word pieces of\nthe authors' held-out writing to the right author 100 % of the time" in html
    assert "ada-quillfeather 2/2, 95 % CI\n34 %-100 %; oskar-brennmoor 3/3" in html
    assert "candidate\n<b>1</b>\n(95 % CI 44 %-100 %), baseline\n<b>1</b>\n(95 % CI 44 %-100 %)" in html
    assert set(res.perplexity) == {"candidate", "baseline", "base", "twin:oskar-brennmoor"}
    attribution = next(c for c in res.gate["checks"] if c["metric"] == "attribution")
    assert attribution["rows"] == 3 and attribution["outcome"] in ("pass", "fail")


def test_a_model_the_unreachable_judge_skipped_is_not_checkpointed(settings: Any, setup: dict[str, Any]) -> None:
    """The judge unreachable during the candidate is given up, so the baseline is never judged: checkpointing
    the baseline then (no unreachable call of its own) let a later run with the judge back reuse a baseline
    without judge scores, and store that report as complete."""
    from twin_core.evaluation.judge import Judge
    from twin_core.evaluation.resume import Checkpoints
    from twin_core.evaluation.run import evaluate

    saved = Checkpoints(settings, "unreachable-judge")
    judge = Judge(FakeLLM("judge", fail=True), "dead endpoint", max_failures=2)
    evaluate(settings, setup["cand"].ref, "base", tools=_tools(setup, judge), config=_cfg(settings), checkpoints=saved)
    assert judge.unreachable == 2 and saved.load("candidate") is None and saved.load("baseline") is None


def test_a_resumed_model_brings_back_its_share_of_the_judge(settings: Any, setup: dict[str, Any]) -> None:
    """A checkpointed model's judge calls, failures, errors and the judge being given up come back on resume:
    the summary said "ok, 0 failures" for a judge that had replied without scores to the resumed model."""
    from twin_core.evaluation.judge import Judge
    from twin_core.evaluation.resume import Checkpoints
    from twin_core.evaluation.run import evaluate

    saved = Checkpoints(settings, "judge-without-scores")
    first = Judge(FakeLLM("judge", default="no scores here"), "local judge", max_failures=2)
    whole = evaluate(settings, setup["cand"].ref, "base", tools=_tools(setup, first), config=_cfg(settings),
                     checkpoints=saved)  # fmt: skip
    assert whole.judge["status"] == "unavailable" and whole.judge["calls"] == 2
    assert saved.load("candidate") is not None and saved.load("baseline") is not None
    second = Judge(FakeLLM("judge", default="no scores here"), "local judge", max_failures=2)
    resumed = evaluate(settings, setup["cand"].ref, "base", tools=_tools(setup, second), config=_cfg(settings),
                       checkpoints=saved)  # fmt: skip
    assert second.llm.calls == 0
    assert {k: resumed.judge[k] for k in ("status", "calls", "failures", "unreachable", "reason", "errors")} == {
        k: whole.judge[k] for k in ("status", "calls", "failures", "unreachable", "reason", "errors")
    }


def test_answers_on_a_gpu_are_other_inputs_than_on_a_cpu(
    settings: Any, setup: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The same models answer in float32 on a CPU and in bf16 on a GPU, and greedy text may differ: a report or
    a checkpoint made on one is not reused on the other."""
    from twin_core.evaluation.run import plan, prepare
    from twin_core.llm import loading

    p = plan(settings, setup["cand"].ref, "base", _cfg(settings))
    cpu = prepare(settings, p, _tools(setup)).inputs_hash
    assert prepare(settings, p, _tools(setup)).inputs_hash == cpu
    monkeypatch.setattr(loading, "placement", lambda choice="auto": ("cuda", None))
    assert prepare(settings, p, _tools(setup)).inputs_hash != cpu
