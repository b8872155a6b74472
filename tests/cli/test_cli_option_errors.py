"""A wrong option value named by its option (or the variable it came from) and what it accepts, checked before
anything else is looked up: one JSON result line on stdout, the protocol's exit code. And the bars a person
watching the demo or `twin validate raw` sees."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from support.cli import one_error_line

DURATION = "not a duration (e.g. 30s, 15m, 1h)"
AT_LEAST_1 = "Input should be greater than or equal to 1"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["analyse", "--interval", "garbage"], f"Invalid value for '--interval': 'garbage': {DURATION}"),
        (["analyse", "--window", "garbage"], f"Invalid value for '--window': 'garbage': {DURATION}"),
        (["watch", "--timeout", "xx"], f"Invalid value for '--timeout': 'xx': {DURATION}"),
        (["watch", "--interval", "0s"], "Invalid value for '--interval': '0s': must be longer than 0 (e.g. 30s, 1h)"),
        (["analyse", "--min-requests", "0"], f"Invalid value for '--min-requests': {AT_LEAST_1}"),
    ],
)  # fmt: skip
def test_deploy_names_a_bad_duration_or_min_requests(twin, twin_home: Path, args: list[str], message: str) -> None:
    # was "not a duration: 'garbage' (e.g. ...)" naming no option, and "deploy config: min_requests must be >= 1
    # ..." blaming the config file for the command line's value
    run = twin("deploy", *args)
    assert one_error_line(run, 2, "usage", f"deploy.{args[0]}") == message


@pytest.mark.parametrize(
    ("percent", "bound"), [("500", "less than or equal to 99"), ("0", "greater than or equal to 1")]
)
def test_deploy_canary_names_a_bad_percent_before_looking_up_the_version(
    twin, twin_home: Path, percent: str, bound: str
) -> None:
    # the version was looked up first: "unknown model version ada-quillfeather/v0001" hid the bad --percent
    run = twin("deploy", "canary", "ada-quillfeather/v0001", "--percent", percent)
    assert one_error_line(run, 2, "usage", "deploy.canary") == f"Invalid value for '--percent': Input should be {bound}"


def test_rag_search_names_k(twin, twin_home: Path) -> None:
    run = twin("rag", "search", "q", "-k", "0")  # was "k must be at least 1 (got 0)", exit 3
    assert one_error_line(run, 2, "usage", "rag.search") == f"Invalid value for '-k' / '--k': {AT_LEAST_1}"


@pytest.mark.parametrize("command", ["search", "query"])
def test_rag_names_a_bad_category(twin, twin_home: Path, command: str) -> None:
    # was "unknown category 'foo' (known: articles, posts, repositories)"
    run = twin("rag", command, "q", "--category", "posts", "--category", "foo")
    message = one_error_line(run, 3, "input", f"rag.{command}")
    assert message == "--category 'foo': expected articles, posts or repositories"


def test_rag_search_still_takes_category_aliases(twin, twin_home: Path) -> None:
    run = twin("rag", "search", "q", "-c", "post", "-c", "Repo")
    assert run.returncode == 0, run.stderr[-2000:]
    assert run.result["status"] == "ok" and run.result["hits"] == []


@pytest.mark.parametrize(
    ("args", "step", "message"),
    [
        (["drift", "--window", "xx"], "drift", "--window 'xx': expected a number and a unit s/m/h/d, like 1h or 30m"),
        (["drift", "--window", "30s"], "drift", "--window '30s': at least 1m"),
        (["record-alerts", "--delivered", "drift:query_length", "--end", "2026-11-21T12:00:00Z", "--window", "400d"],
         "record_alerts", "--window '400d': at most 366d"),
    ],
)  # fmt: skip
def test_monitor_names_a_bad_window(twin, twin_home: Path, args: list[str], step: str, message: str) -> None:
    run = twin("monitor", *args)  # was "window 'xx': ...", naming no option
    assert one_error_line(run, 3, "input", f"monitor.{step}") == message


def test_monitor_names_the_variable_a_bad_default_window_came_from(twin, twin_home: Path) -> None:
    run = twin("monitor", "drift", env={"TWIN_MONITOR_WINDOW": "xx"})
    error = one_error_line(run, 2, "config", "monitor.drift")
    assert error == "TWIN_MONITOR_WINDOW 'xx': expected a number and a unit s/m/h/d, like 1h or 30m"


def test_etl_crawl_names_a_missing_config(twin, twin_home: Path) -> None:
    run = twin("etl", "crawl", "--config", "/nonexistent.yaml")  # was "ETL config /nonexistent.yaml does not exist"
    error = one_error_line(run, 3, "input", "etl.crawl")
    assert error == "--config '/nonexistent.yaml': the file does not exist (give the path of a YAML file)"


def test_the_demo_training_stage_draws_the_cli_progress_bar(twin_home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # the demo's other stages take the CLI's progress factory; training ran with the silent default (no bar)
    import twin_core.training.data as data
    import twin_core.training.run as run
    from twin_core.demo import training
    from twin_core.progress import progress

    versions = {"instruct": ["instruct/ada/v0001"], "preference": ["preference/ada/v0001"]}
    monkeypatch.setattr(data, "dataset_versions", lambda settings, kind: versions[kind])
    calls: list[dict[str, Any]] = []

    def fake_run_training(settings: Any, kind: str, dataset: str, **kwargs: Any) -> dict[str, Any]:
        calls.append({"kind": kind, **kwargs})
        metrics = dict.fromkeys(("first_loss", "last_loss", "perplexity_base", "perplexity_trained", "tokens_per_s"), 1)
        return {"model": f"ada/v000{len(calls)}", "dataset": dataset, "steps": 1, "metrics": metrics,
                "comet_archive": None}  # fmt: skip

    monkeypatch.setattr(run, "run_training", fake_run_training)
    result = training.stage(Path("unused"))
    assert result["candidates"] == ["ada/v0002"]
    assert [(c["kind"], c.get("progress")) for c in calls] == [("sft", progress), ("dpo", progress)]


def test_validate_draws_our_bar_and_none_of_great_expectations(twin, twin_home: Path, sample_dir: Path) -> None:
    # GX's nested "Calculating Metrics" bars (36 on the sample corpus) broke the "validate" bar's line
    assert twin("warehouse", "import", str(sample_dir)).returncode == 0
    run = twin("validate", "raw", env={"TWIN_PROGRESS": "1"})
    assert run.returncode == 0, run.stderr[-2000:]
    assert "validate: 100%" in run.stderr
    assert "Calculating Metrics" not in run.stderr


def test_a_followed_watch_always_ends_two_hours_by_default(twin_home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """`deploy watch --follow` without --timeout used to watch without an end: a canary whose checks hold
    (too little traffic) stayed at its weight for good. It now rolls back after 2h unless told otherwise."""
    from typer.testing import CliRunner

    from twin_core.cli.main import app
    from twin_core.deploy import watch

    seen: list[float | None] = []
    monkeypatch.setattr(watch, "watch", lambda settings, **kw: seen.append(kw["timeout_s"]) or {"decision": "hold"})
    # in-process: the root callback's logging set-up would point this worker's root logger at the runner's
    # stderr, closed after the call (later tests' caplog and log calls would see it)
    monkeypatch.setattr("twin_core.cli.main.setup_logging", lambda *args, **kwargs: None)
    for extra in ([], ["--timeout", "30m"]):
        result = CliRunner().invoke(app, ["deploy", "watch", "--follow", *extra])
        assert result.exit_code == 0, result.output
    assert seen == [7200.0, 1800.0]
