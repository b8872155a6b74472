"""`twin evaluate` as a pipeline step: real (tiny) models, the report in the artifact store, bad input."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from eval_fixtures import fake_model_folder, register, setup_tiny_candidate, write_dataset

MODELS_DIR = Path(__file__).resolve().parents[2] / ".pytest_cache" / "d" / "twin-llm-models"


@pytest.fixture
def env(settings: Any, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    values = {"TWIN_LLM_THREADS": "1", "COMET_API_KEY": "", "TWIN_LLM_MODELS_DIR": str(MODELS_DIR)}
    for key, value in values.items():
        monkeypatch.setenv(key, value)
    return values


def test_unknown_version_exit_3(twin: Any, env: dict[str, str]) -> None:
    run = twin("evaluate", "--model", "ada-quillfeather/v0042", env=env)
    assert run.returncode == 3 and run.result["error"] == (
        "--model 'ada-quillfeather/v0042': unknown model version ada-quillfeather/v0042 "
        "(no model version of ada-quillfeather yet; see `twin registry list`)"
    )
    run = twin("evaluate", "--model", "not a ref", env=env)
    assert run.returncode == 3
    expected = "--model 'not a ref': expected a model version <author_slug>/vNNNN, e.g. paul-iusztin/v0001"
    assert run.result["error"] == expected


def test_empty_test_split_is_a_clear_error(settings: Any, tmp_path: Path, twin: Any, env: dict[str, str]) -> None:
    dataset = write_dataset(settings, empty_test=True)
    mv = register(settings, fake_model_folder(tmp_path, "c"), dataset, "x")
    run = twin("evaluate", "--model", mv.ref, env=env)
    assert run.returncode == 3
    assert run.result["error"].startswith(f"dataset {dataset} holds out 0 usable rows")
    store = Path(settings.artifacts_location)
    assert not (store / "evaluations").exists()  # nothing written


def test_baselines_that_compare_nothing_exit_3_naming_the_option(
    settings: Any, tmp_path: Path, twin: Any, env: dict[str, str]
) -> None:
    """An unknown --baseline lists the author's versions; the candidate itself or another author's model is no
    baseline. All before any model loads (the folders hold no weights) and with nothing written."""
    from twin_core.stores.registry import open_registry

    mv = register(settings, fake_model_folder(tmp_path, "c"), write_dataset(settings), "x")
    other = open_registry(settings).register("Oskar Brennmoor", fake_model_folder(tmp_path, "o"), {"base_model": "x"})
    args = ("evaluate", "--model", mv.ref, "--min-rows", "2", "--no-judge", "--baseline")
    run = twin(*args, "ada-quillfeather/v0042", env=env)
    assert run.returncode == 3 and run.result["error"] == (
        "--baseline 'ada-quillfeather/v0042': unknown model version ada-quillfeather/v0042 "
        "(model versions of ada-quillfeather: v0001; see `twin registry list`)"
    )
    run = twin(*args, mv.ref, env=env)
    assert run.returncode == 3 and run.result["error"] == (
        f"--baseline '{mv.ref}' is the candidate itself: compare it with production, base or another version of "
        "ada-quillfeather"
    )
    run = twin(*args, other.ref, env=env)
    assert run.returncode == 3 and run.result["error"].startswith(
        f"--baseline '{other.ref}' is a model of Oskar Brennmoor, the candidate {mv.ref} one of Ada Quillfeather:"
    )
    assert not (Path(settings.artifacts_location) / "evaluations").exists()


def test_held_out_rows_the_gate_cannot_decide_on_exit_3(
    settings: Any, tmp_path: Path, twin: Any, env: dict[str, str]
) -> None:
    """One held-out row, even with --min-rows 1: the gate needs two paired rows for an interval, so this is
    refused before any model loads (it used to run every model, then fail the gate with every metric missing).
    A dataset the candidate names that is gone says where the name came from."""
    one = register(settings, fake_model_folder(tmp_path, "c"), write_dataset(settings, held_out=1), "x")
    run = twin("evaluate", "--model", one.ref, "--min-rows", "1", "--no-judge", env=env)
    assert run.returncode == 3 and run.result["error"] == (
        f"dataset {one.metadata['dataset_versions'][0]} holds out 1 usable rows (an instruction and the author's "
        "answer); the evaluation needs at least 2 (the gate's floor: an interval needs 2 paired rows; --min-rows "
        "is 1): rebuild the dataset with more held-out documents"
    )
    gone = register(settings, fake_model_folder(tmp_path, "g"), "instruct/ada-quillfeather/v0009", "x")
    run = twin("evaluate", "--model", gone.ref, "--min-rows", "1", "--no-judge", env=env)
    assert run.returncode == 3 and run.result["error"].startswith(
        f"{gone.ref} was trained on instruct/ada-quillfeather/v0009 (its registry metadata): unknown dataset "
        "version instruct/ada-quillfeather/v0009 (instruct versions of ada-quillfeather: v0001;"
    )
    assert not (Path(settings.artifacts_location) / "evaluations").exists()


def test_malformed_judge_url_is_a_config_error_before_any_model(
    settings: Any, tmp_path: Path, twin: Any, env: dict[str, str]
) -> None:
    """A judge URL that is no URL is a setting to fix (exit 2, naming the variable), not a judge that is down:
    it used to load and run every model, then report the judge unavailable."""
    mv = register(settings, fake_model_folder(tmp_path, "c"), write_dataset(settings), "x")
    run = twin("evaluate", "--model", mv.ref, "--min-rows", "2", env={**env, "TWIN_EVAL_JUDGE_BASE_URL": "not a url"})
    assert run.returncode == 2 and run.result["kind"] == "config"
    assert run.result["error"] == (
        "TWIN_EVAL_JUDGE_BASE_URL 'not a url': expected an http(s) URL with a host, e.g. http://host:8000/v1"
    )
    assert not (Path(settings.artifacts_location) / "evaluations").exists()


@pytest.mark.slow
def test_evaluate_tiny_models_judge_down(settings: Any, tmp_path: Path, twin: Any, env: dict[str, str]) -> None:
    """Real generation, perplexity and embeddings. The judge endpoint is down: an outage, so the step is
    retryable (exit 4) and stores nothing; `--no-judge` decides without it: judge metrics missing, not zero."""
    from twin_core.stores.artifacts import open_artifact_store

    ref = setup_tiny_candidate(settings, tmp_path)
    down = {**env, "TWIN_EVAL_JUDGE_BASE_URL": "http://127.0.0.1:9/v1", "TWIN_EVAL_JUDGE_MODEL": "judge"}
    args = ("evaluate", "--model", ref, "--baseline", "base", "--max-rows", "2", "--min-rows", "2")
    run = twin(*args, env=down)
    assert (run.returncode, run.result["kind"]) == (4, "unavailable"), run.stderr[-3000:]
    assert "BackendUnavailable" in run.result["error"] and "--no-judge" in run.result["error"]
    assert open_artifact_store(settings).list("evaluations/ada-quillfeather") == []
    run = twin(*args, "--no-judge", env=down)
    assert run.returncode == 0, run.stderr[-3000:]
    res = run.result
    assert res["rows"] == 2 and res["baseline"].startswith("base:")
    for role in ("candidate", "baseline"):
        m = res["metrics"][role]
        assert m["perplexity"] > 1000  # untrained tiny models: a real, huge perplexity
        assert -1 <= m["topic_similarity"] <= 1 and 0 <= m["rouge_l"] <= 1
        assert m["judge_accuracy"] is None and m["judge_style"] is None
    assert res["judge"]["status"] == "off"
    assert res["rag"]["status"] == "missing"  # no vector store in this home
    assert {"judge_accuracy", "judge_style", "groundedness"} <= set(res["missing"])
    assert res["gate"] in ("pass", "fail") and res["passed"] == (res["failing"] == [])
    report = json.loads(Path(res["report"]["json"]).read_text())
    assert report["metrics"] == res["metrics"] and report["comet"]["mode"] == "offline"
    html = Path(res["report"]["html"]).read_text()
    assert "paired rows" in html and "Decided without these optional metrics" in html
    assert res["gate_checks"]["perplexity"]["rows"] == 2


@pytest.mark.slow
def test_baseline_against_itself_passes_and_a_damaged_model_fails(settings: Any, tmp_path: Path, env: Any) -> None:
    """Real tiny models: the base model as its own candidate is never better and always not worse; the
    same weights with noise added fail the gate (perplexity worse on every paired row)."""
    import dataclasses
    import shutil

    import torch
    from eval_fixtures import register, tiny_model_folder, write_dataset
    from transformers import AutoModelForCausalLM

    from twin_core.evaluation.config import load_eval_config
    from twin_core.evaluation.run import evaluate

    dataset = write_dataset(settings)
    base = tiny_model_folder(tmp_path, "tiny-base", settings, seed=1)
    same = tmp_path / "same"
    shutil.copytree(base, same)
    damaged = tmp_path / "damaged"
    shutil.copytree(base, damaged)
    model = AutoModelForCausalLM.from_pretrained(damaged / "merged")
    torch.manual_seed(0)
    with torch.no_grad():
        for param in model.parameters():
            param.add_(torch.randn_like(param) * 0.5)
    model.save_pretrained(damaged / "merged")
    cfg = load_eval_config(settings)
    # a random tiny model writes no English words: its stylometric distance is missing, so not required here
    rules = tuple(dataclasses.replace(r, required=r.metric != "style_distance" and r.required) for r in cfg.rules)
    cfg = dataclasses.replace(cfg, min_rows=3, max_new_tokens=8, rules=rules)
    itself = evaluate(settings, register(settings, same, dataset, str(base / "merged")).ref, "base", config=cfg)
    checks = {c["metric"]: c for c in itself.gate["checks"]}
    assert itself.gate["passed"] is True, [
        (c["metric"], c["outcome"], c["rows"], c["reason"]) for c in itself.gate["checks"]
    ]
    assert checks["perplexity"]["rows"] == 3 and checks["perplexity"]["low"] == checks["perplexity"]["high"] == 0.0
    assert checks["rouge_l"]["diff"] == 0.0 and checks["rouge_l"]["outcome"] == "pass"
    broken = evaluate(settings, register(settings, damaged, dataset, str(base / "merged")).ref, "base", config=cfg)
    assert broken.gate["passed"] is False and "perplexity" in broken.gate["failing"]
    ppl = next(c for c in broken.gate["checks"] if c["metric"] == "perplexity")
    assert ppl["rows"] == 3 and ppl["high"] < 0  # worse on every row: the whole interval on the bad side


@pytest.mark.slow
def test_batched_answers_equal_one_at_a_time(settings: Any, tmp_path: Path, env: Any) -> None:
    """evaluation.answers.generate: batches of 3 give the very texts of one row at a time (greedy)."""
    from eval_fixtures import tiny_model_folder

    from twin_core.evaluation.answers import generate
    from twin_core.evaluation.run import _load_model

    folder = tiny_model_folder(tmp_path, "tiny", settings, seed=3)
    llm = _load_model(settings, str(folder / "merged"), "tiny")
    prompts = [[{"role": "user", "content": q}] for q in ("Hi", "Why Postgres for queues, really?", "Kafka lag")]
    one = generate(llm, prompts, 6, batch_size=1)
    batched = generate(llm, prompts, 6, batch_size=3)
    assert all(isinstance(t, str) for t in one) and batched == one


def test_sample_sizes_are_checked_before_any_model(
    settings: Any, tmp_path: Path, twin: Any, env: dict[str, str]
) -> None:
    """--max-rows below min_rows: exit 3 naming where each number came from; --min-rows 0: a usage error.
    The candidate's folder holds no weights: any attempt to load a model would fail otherwise."""
    mv = register(settings, fake_model_folder(tmp_path, "c"), write_dataset(settings), "x")  # 3 held-out rows
    run = twin("evaluate", "--model", mv.ref, "--max-rows", "2", "--min-rows", "3", "--no-judge", env=env)
    assert run.returncode == 3 and run.result["kind"] == "input"
    assert run.result["error"] == (
        "max_rows 2 (--max-rows) is below min_rows 3 (--min-rows), the fewest rows the gate decides on: "
        "raise max_rows (0 = all rows) or lower min_rows"
    )
    config = tmp_path / "eval.yaml"
    config.write_text("samples:\n  min_rows: 3\n")
    run = twin(
        "evaluate", "--model", mv.ref, "--max-rows", "2", "--no-judge", env={**env, "TWIN_EVAL_CONFIG": str(config)}
    )
    assert run.returncode == 3 and run.result["error"].startswith(
        f"max_rows 2 (--max-rows) is below min_rows 3 (samples.min_rows in {config}),"
    )
    run = twin("evaluate", "--model", mv.ref, "--min-rows", "5", "--no-judge", env=env)  # 3 rows < 5
    assert run.returncode == 3
    assert run.result["error"].startswith(f"dataset {mv.metadata['dataset_versions'][0]} holds out 3 usable rows")
    assert "the evaluation needs at least 5 (--min-rows)" in run.result["error"]
    run = twin("evaluate", "--model", mv.ref, "--min-rows", "0", env=env)
    assert run.returncode == 2 and run.result["kind"] == "usage"
    assert run.result["error"] == "Invalid value for '--min-rows': Input should be greater than or equal to 1"
    assert not (Path(settings.artifacts_location) / "evaluations").exists()  # nothing evaluated


@pytest.mark.parametrize(
    ("text", "key"),
    [
        ("gate:\n  confidence: 7\n", "gate.confidence must be between 0 and 1"),
        ("- samples\n", "must be a mapping (got list)"),
        ("gate:\n  metrics:\n    rouge_L: {better: higher, min_delta: 0}\n", "gate.metrics.rouge_L: unknown metric"),
    ],
)
def test_invalid_config_exit_2_before_any_model(
    settings: Any, tmp_path: Path, twin: Any, env: dict[str, str], text: str, key: str
) -> None:
    mv = register(settings, fake_model_folder(tmp_path, "c"), write_dataset(settings), "x")
    config = tmp_path / "eval.yaml"
    config.write_text(text)
    args = ("evaluate", "--model", mv.ref, "--min-rows", "3", "--no-judge")
    run = twin(*args, env={**env, "TWIN_EVAL_CONFIG": str(config)})
    assert run.returncode == 2 and run.result["kind"] == "config"
    assert run.result["error"].startswith(f"{config}: ") and key in run.result["error"]
