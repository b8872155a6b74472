"""`twin`: every pipeline step as a command. Each command prints exactly one JSON result line on stdout.

Group modules import only typer at module level; heavy libraries load inside the commands, so
``twin --help`` answers in well under a second.
"""

from __future__ import annotations

import os
import sys

import typer

from twin_core import __version__
from twin_core.cli import (
    datasets,
    demo,
    deploy,
    etl,
    evaluate,
    features,
    monitor,
    rag,
    registry,
    serve,
    train,
    validate,
    warehouse,
)
from twin_core.cli.logs import check_level, setup_logging

app = typer.Typer(
    name="twin",
    help="LLM Twin: build, refresh and serve a language model that writes like one person.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"twin {__version__}")
        raise typer.Exit()


def _log_level(ctx: typer.Context, value: str | None) -> str | None:
    """Checked while parsing, so a bad level is a usage error (exit 2, JSON line) naming where it came from."""
    try:
        check_level(value)
    except ValueError as exc:
        from_env = getattr(ctx.get_parameter_source("log_level"), "name", "") == "ENVIRONMENT"
        raise typer.BadParameter(str(exc), param_hint="TWIN_LOG_LEVEL" if from_env else "'--log-level'") from None
    return value


@app.callback()
def root(
    log_level: str = typer.Option(
        None,
        "--log-level",
        envvar="TWIN_LOG_LEVEL",
        callback=_log_level,
        help="DEBUG, INFO, WARNING or ERROR.",
    ),
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True, help="Print the version."),
) -> None:
    setup_logging(log_level)


# Groups (typer sub-apps) and single commands, in pipeline order.
app.add_typer(warehouse.app, name="warehouse", help="Import, export and inspect the data warehouse.")
app.add_typer(etl.app, name="etl", help="Crawl links into the warehouse.")
app.add_typer(validate.app, name="validate", help="Validate warehouse data with Great Expectations.")
app.add_typer(features.app, name="features", help="Clean, chunk and embed documents into the feature store.")
app.add_typer(datasets.app, name="datasets", help="Build instruction and preference datasets.")
app.add_typer(train.app, name="train", help="Fine-tune the twin (SFT with LoRA, then DPO).")
app.command("evaluate", help="Evaluate a candidate model against production.")(evaluate.app)
app.add_typer(registry.app, name="registry", help="List and promote model versions.")
app.command("serve", help="Serve the twin over HTTP (KServe model server).")(serve.app)
app.add_typer(rag.app, name="rag", help="Search the feature store and ask the twin from the command line.")
app.add_typer(deploy.app, name="deploy", help="Roll a model out on KServe (canary, promote, rollback).")
app.add_typer(monitor.app, name="monitor", help="Drift reports and alerts with Evidently.")
app.command("demo", help="Run the whole pipeline on the sample corpus and the embedded stores.")(demo.app)


def _click_exception() -> type[Exception]:
    """click's base exception as typer uses it (typer ≥ 0.25 vendors click as ``typer._click``)."""
    return next(c for c in typer.BadParameter.__mro__ if c.__name__ == "ClickException")


def _usage_error(exc: Exception) -> None:
    """A malformed command line: typer's message on stderr, the JSON error line on stdout, exit 2."""
    from typer import rich_utils

    from twin_core.cli.protocol import emit_result, error_result

    exit_code = int(getattr(exc, "exit_code", 2))
    rich_utils.rich_format_error(exc)  # type: ignore[arg-type]
    if type(exc).__name__ == "NoArgsIsHelpError":  # `twin` or `twin <group>` alone: help, not a command run
        sys.exit(exit_code)
    ctx = getattr(exc, "ctx", None)
    path = ctx.command_path.split()[1:] if ctx is not None else []
    message = exc.format_message() if hasattr(exc, "format_message") else str(exc)
    emit_result(error_result(".".join(path) or "twin", message, "usage"))
    sys.exit(exit_code)


def main() -> None:
    # transformers' Trainer imports comet_ml (its integration) before our tracking code runs; comet_ml
    # reads this on import: never send crash reports to Comet's Sentry from a pipeline step.
    os.environ.setdefault("COMET_ERROR_TRACKING_ENABLE", "false")
    try:
        code = app(standalone_mode=False)  # usage errors come back here instead of exiting
    except _click_exception() as exc:
        _usage_error(exc)
    except typer.Abort:
        sys.exit(1)
    sys.exit(code if isinstance(code, int) else 0)


if __name__ == "__main__":
    main()
