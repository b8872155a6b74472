"""A new user's mistakes: an option without its value, a malformed version, a stage typo, an unknown author.
Each is one line on stderr naming the option and what it accepts, then the JSON result line on stdout (the
step's own name), with the protocol's exit code; and the logs and bars stay readable."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from support.cli import one_error_line


@pytest.mark.parametrize(
    ("args", "step", "usage"),
    [
        (["datasets", "list", "--kind"], "datasets.list", "twin datasets list"),
        (["--log-level", "INFO", "train", "sft", "--dataset"], "train.sft", "twin train sft"),
        (["registry", "promote", "ada-quillfeather/v0001", "--stage"], "registry.promote", "twin registry promote"),
        (["--log-level"], "twin", "twin"),
    ],
)
def test_an_option_without_its_value_names_the_command(twin, twin_home: Path, args, step, usage) -> None:
    # click's parser raises this error without a context: the JSON line said step "twin", and no usage was shown
    run = twin(*args)
    option = next(a for a in reversed(args) if a.startswith("--"))
    assert one_error_line(run, 2, "usage", step) == f"Option '{option}' requires an argument."
    assert f"Usage: {usage} [OPTIONS]" in run.stderr
    assert f"Try '{usage} -h' for help." in run.stderr


def test_a_usage_error_carries_the_step_name_of_the_result_line(twin, twin_home: Path) -> None:
    # `monitor record-alerts` reports its results as step monitor.record_alerts: its usage errors said record-alerts
    run = twin("monitor", "record-alerts", "--end", "2026-11-21T13:00:00Z")
    assert one_error_line(run, 2, "usage", "monitor.record_alerts") == "Missing option '--delivered'."


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["sft", "--dataset", "ada/v0001"],
            "--dataset 'ada/v0001': expected instruct/<author_slug>/vNNNN, e.g. instruct/paul-iusztin/v0001 "
            "(see `twin datasets list`)",
        ),
        (
            ["sft", "--dataset", "preference/ada-quillfeather/v0001"],
            "--dataset 'preference/ada-quillfeather/v0001' is a preference dataset; twin train sft needs "
            "instruct/<author_slug>/vNNNN, e.g. instruct/paul-iusztin/v0001 (see `twin datasets list`)",
        ),
        (
            ["dpo", "--dataset", "instruct/ada-quillfeather/v0001", "--from", "ada-quillfeather/v0001"],
            "--dataset 'instruct/ada-quillfeather/v0001' is an instruct dataset; twin train dpo needs "
            "preference/<author_slug>/vNNNN, e.g. preference/paul-iusztin/v0001 (see `twin datasets list`)",
        ),
        (
            ["dpo", "--dataset", "preference/ada-quillfeather/v0001", "--from", "ada-quillfeather"],
            "--from 'ada-quillfeather': expected the SFT model version <author_slug>/vNNNN, e.g. "
            "paul-iusztin/v0001 (see `twin registry list`)",
        ),
    ],
)
def test_train_names_a_malformed_dataset_or_from(twin, twin_home: Path, args: list[str], message: str) -> None:
    # was "dataset version 'ada/v0001': expected ..." / "model version 'ada-quillfeather': ...", naming no option
    run = twin("train", *args, "--profile", "cpu-tiny")
    assert one_error_line(run, 3, "input", f"train.{args[0]}") == message


@pytest.mark.parametrize(
    ("extra", "code", "kind", "message"),
    [
        (["--stage", "best"], 3, "input", "--stage 'best': expected candidate, canary, production or archived"),
        (
            ["--stage", "production", "--percent", "20"],
            3,
            "input",
            "--percent 20: a canary's share of the traffic, only with --stage canary",
        ),
        (
            ["--stage", "canary", "--percent", "150"],
            2,
            "usage",
            "Invalid value for '--percent': Input should be less than or equal to 99",
        ),
    ],
)
def test_registry_promote_names_a_bad_stage_or_percent(twin, twin_home: Path, extra, code, kind, message) -> None:
    # the version was looked up first: "unknown model version ada-quillfeather/v0009" hid the typo
    run = twin("registry", "promote", "ada-quillfeather/v0009", *extra)
    assert one_error_line(run, code, kind, "registry.promote") == message


def test_registry_rollback_names_an_unknown_author(twin, twin_home: Path) -> None:
    # was "Nobody: no previous production version left to roll back to (...)", as if the author had versions
    run = twin("registry", "rollback", "--author", "Nobody")
    error = one_error_line(run, 3, "input", "registry.rollback")
    assert error == "--author 'Nobody': no model version of this author in the registry (known: none)"


def test_validate_logs_no_library_chatter(twin, twin_home: Path) -> None:
    # great_expectations logged ~200 INFO lines ("Skipping registering function ...") per run
    run = twin("validate", "raw")
    assert run.returncode == 0, run.stderr[-2000:]
    assert [ln for ln in run.stderr.splitlines() if "great_expectations" in ln] == []


@pytest.mark.parametrize(("twin_progress", "hub_bars_off"), [("0", "1"), ("1", "None")])
def test_twin_progress_0_turns_the_libraries_bars_off_too(tmp_path: Path, twin_progress: str, hub_bars_off) -> None:
    # TWIN_PROGRESS=0 silenced our bars only: transformers' "Loading weights" bar still went to the logs
    code = (
        "import os, sys\n"
        "sys.argv = ['twin', '--version']\n"
        "from twin_core.cli.main import main\n"
        "try:\n    main()\nexcept SystemExit:\n    pass\n"
        "print(os.environ.get('HF_HUB_DISABLE_PROGRESS_BARS'), file=sys.stderr)\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "HF_HUB_DISABLE_PROGRESS_BARS"}
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env={**env, "TWIN_PROGRESS": twin_progress, "TWIN_HOME": str(tmp_path / "home")},
    )
    assert out.returncode == 0, out.stderr
    assert out.stderr.strip().splitlines()[-1] == hub_bars_off


def test_a_native_abort_at_teardown_leaves_the_exit_code_as_the_command_set_it(tmp_path: Path) -> None:
    # a native thread pool torn down at interpreter finalization (Arrow's, apache/arrow#34314) aborted finished
    # steps: exit -6 instead of the command's code, seen in CI for `twin train` and `twin evaluate`
    code = (
        "import os, sys\n"
        "class NativePool:\n"
        "    def __del__(self):\n"
        "        os.abort()\n"
        "pool = NativePool()  # finalized at interpreter teardown, after every atexit hook\n"
        "sys.argv = ['twin', 'registry', 'show', 'nobody/v0001']\n"
        "from twin_core.cli.main import main\n"
        "main()\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path,
        env={**os.environ, "TWIN_HOME": str(tmp_path / "home")},
    )  # fmt: skip
    assert out.returncode == 3, out.stderr[-2000:]
    assert json.loads(out.stdout.splitlines()[-1])["kind"] == "input"
