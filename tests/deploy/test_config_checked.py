"""The canary config (configs/deploy.yaml or TWIN_DEPLOY_CONFIG) is checked when it loads: a metric range that
is empty, a typo'd check name or a word for a number is a ConfigError (exit 2). They used to load: an empty
range passed every analysis (a canary promoted on no evidence), a typo was ignored, and a word crashed the
analysis (exit 1); a file that is not YAML, or a `canary` that is not a mapping, was an unexpected error."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from twin_core.deploy.analysis import canary_config, load_canary_config
from twin_core.errors import ConfigError


@pytest.mark.parametrize(
    ("metrics", "message"),
    [
        ({"request-success-rate": {}}, "must be {min: N} and/or {max: N}"),
        ({"request-success-rate": {"min": "high"}}, "must be {min: N} and/or {max: N}"),
        ({"latency-p95-ratio": {"maximum": 2}}, "must be {min: N} and/or {max: N}"),
        ({"request_success_rate": {"min": 0.99}}, "unknown canary metric request_success_rate"),
        (["request-success-rate"], "must be a mapping"),
    ],
)
def test_a_metric_range_that_cannot_decide_is_a_config_error(metrics: Any, message: str) -> None:
    with pytest.raises(ConfigError, match=message.replace("{", r"\{").replace("}", r"\}")):
        canary_config({"metrics": metrics})


def test_a_valid_range_overrides_only_its_check() -> None:
    cfg = canary_config({"metrics": {"request-success-rate": {"min": 0.99}}})
    assert cfg.metrics["request-success-rate"] == {"min": 0.99}
    assert cfg.metrics["latency-p95-ratio"] == {"max": 1.5}


@pytest.mark.parametrize(("text", "message"), [("canary: {\n", "not readable YAML"), ("canary: [1, 2]\n", "mapping")])
def test_a_file_that_is_not_a_canary_mapping_is_a_config_error(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "deploy.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=message):
        load_canary_config(path)


def test_cli_exit_2_naming_the_check(settings: Any, tmp_path: Path, twin: Any) -> None:
    path = tmp_path / "deploy.yaml"
    path.write_text("canary:\n  metrics:\n    request-success-rate: {}\n")
    run = twin("deploy", "analyse", env={"TWIN_DEPLOY_CONFIG": str(path)})
    assert (run.returncode, run.result["kind"]) == (2, "config")
    assert "canary.metrics.request-success-rate" in run.result["error"]
