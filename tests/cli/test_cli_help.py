"""`--help` for a new user: every command and every option explained, summaries that fit one line of the
listing, each command's own docstring on its page, examples where the usage is not obvious, and the commands
of `twin --help` in pipeline order."""

from __future__ import annotations

import inspect
from collections.abc import Iterator
from typing import Any

import pytest

SUMMARY_MAX = 120  # characters: one line of the command listing, two at most in an 80-column terminal


def _commands() -> Iterator[tuple[str, Any]]:
    """(command path, click command) for the root, every group and every command, recursively."""
    import typer

    from twin_core.cli.main import app

    todo = [("", typer.main.get_command(app))]
    while todo:
        path, command = todo.pop()
        yield path, command
        for name, sub in getattr(command, "commands", {}).items():
            todo.append((f"{path} {name}".strip(), sub))


def _summary(command: Any) -> str:
    """What the listing of the parent group shows: the short help, else the first paragraph of the help."""
    return (command.short_help or inspect.cleandoc(command.help or "").split("\n\n")[0]).strip()


def test_every_command_and_parameter_has_help() -> None:
    problems = []
    commands = dict(_commands())
    assert len(commands) > 40  # the walk found the groups' commands, not only the root
    for path, command in sorted(commands.items()):
        name = f"twin {path}".strip()
        summary = _summary(command)
        if not summary:
            problems.append(f"{name}: no help summary")
        elif "\n" in summary:
            problems.append(f"{name}: the summary spans lines: {summary!r}")
        elif len(summary) > SUMMARY_MAX:
            problems.append(f"{name}: a {len(summary)}-character summary (at most {SUMMARY_MAX}): {summary!r}")
        for param in command.params:
            if not (getattr(param, "help", None) or "").strip():
                problems.append(f"{name}: {param.param_type_name} {'/'.join(param.opts)} has no help")
    assert problems == []


def test_a_command_page_shows_its_own_docstring() -> None:
    # `twin evaluate --help` used to show main.py's one-line help= instead of evaluate's docstring (the report,
    # the gate); `twin serve --help` lost the endpoints it serves, the same way.
    from twin_core.cli.main import reflow

    replaced = []
    for path, command in _commands():
        doc = inspect.getdoc(getattr(command, "callback", None)) if getattr(command, "callback", None) else None
        if path and doc and command.help != reflow(doc):
            replaced.append(path)
    assert replaced == []


@pytest.mark.parametrize(
    ("command", "example"),
    [
        ("datasets build", 'twin datasets build --author "Ada Quillfeather"'),
        ("datasets show", "twin datasets show instruct/ada-quillfeather/v0001"),
        ("datasets export", "twin datasets export instruct/ada-quillfeather/v0001 "),
        ("train sft", "twin train sft --dataset instruct/ada-quillfeather/v0001 --profile cpu-tiny"),
        ("train dpo", "twin train dpo --dataset preference/ada-quillfeather/v0001 --from ada-quillfeather/v0001"),
        ("evaluate", "twin evaluate --model ada-quillfeather/v0002 --baseline production"),
        ("registry show", "twin registry show ada-quillfeather/v0001"),
        ("registry promote", "twin registry promote ada-quillfeather/v0002 --stage canary --percent 20"),
        ("registry rollback", 'twin registry rollback --author "Ada Quillfeather"'),
        ("registry archive", "twin registry archive ada-quillfeather/v0001"),
    ],
)
def test_commands_taking_a_version_or_author_show_an_example(command: str, example: str) -> None:
    help_text = dict(_commands())[command].help
    assert f"Example: {example}" in help_text


def test_help_lists_the_commands_in_pipeline_order(twin) -> None:
    run = twin("--help", env={"COLUMNS": "120"})
    assert run.returncode == 0, run.stderr
    listing = run.stdout[run.stdout.index("Commands") :]
    order = ["warehouse", "etl", "validate", "features", "datasets", "train", "evaluate", "registry", "serve",
             "rag", "deploy", "monitor", "demo"]  # fmt: skip
    rows = [line.split()[1] for line in listing.splitlines() if line.startswith("│ ") and line.split()[1].isalpha()]
    assert [r for r in rows if r in order] == order


def test_reflow_joins_a_paragraph_and_keeps_an_indented_block() -> None:
    from twin_core.cli.main import reflow

    text = "One summary\n    line.\n\n    Second paragraph\n    wrapped.\n\n        twin a\n        twin b\n"
    assert reflow(text) == "One summary line.\n\nSecond paragraph wrapped.\n\n    twin a\n    twin b"
