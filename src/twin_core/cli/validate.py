"""`twin validate`: Great Expectations suites over warehouse data."""

from __future__ import annotations

import typer

from twin_core.cli.protocol import step

app = typer.Typer(help="Validate warehouse data with Great Expectations.", no_args_is_help=True)


@app.command("raw")
@step("validate.raw")
def raw(
    max_failure_ratio: float = typer.Option(
        None, "--max-failure-ratio", min=0.0, max=1.0, help="Fail above this share (default from settings)."
    ),
) -> dict:
    """Validate raw documents per category; quarantine failures; write Data Docs to the artifact store.

    The result links the Data Docs (data_docs) and states the gate (gate: documents, failures, their
    share with its 95 % interval, the decision). Exit 3 when the share exceeds the maximum; nothing to
    validate holds (exit 0, no verdict)."""
    from twin_core.progress import progress
    from twin_core.settings import get_settings
    from twin_core.validation.raw import validate_raw

    return validate_raw(get_settings(), max_failure_ratio=max_failure_ratio, progress=progress)
