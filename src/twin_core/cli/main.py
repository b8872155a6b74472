"""`twin`: every pipeline step as a command. Each command prints exactly one JSON result line on stdout.

Group modules import only typer at module level; heavy libraries load inside the commands, so
``twin --help`` answers in well under a second.
"""

from __future__ import annotations

import inspect
import sys
from typing import Any

import typer
from typer.core import TyperGroup

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
from twin_core.llm.comet import quiet_comet
from twin_core.progress import quiet_library_bars

# `twin --help` lists the commands in this order (typer would list the single commands before the groups).
PIPELINE_ORDER = (
    "warehouse", "etl", "validate", "features", "datasets", "train", "evaluate", "registry", "serve", "rag",
    "deploy", "monitor", "demo",
)  # fmt: skip


def reflow(text: str | None) -> str | None:
    """Docstring paragraphs as one line each, for the terminal to wrap: typer's rich help keeps a docstring's
    line breaks, so a paragraph wrapped at 120 characters in the source came out broken at 80 columns. A
    paragraph whose lines are all indented (an example) keeps its lines."""
    if not text:
        return text
    paragraphs = inspect.cleandoc(text).split("\n\n")
    kept = [p if all(ln.startswith(" ") for ln in p.splitlines()) else " ".join(p.split()) for p in paragraphs]
    return "\n\n".join(kept)


class _PipelineGroup(TyperGroup):
    """The root group: its commands listed in pipeline order, every command's help reflowed."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        todo = list(self.commands.values())
        while todo:
            command = todo.pop()
            command.help = reflow(command.help)
            todo.extend(getattr(command, "commands", {}).values())

    def list_commands(self, ctx: typer.Context) -> list[str]:
        rank = {name: i for i, name in enumerate(PIPELINE_ORDER)}
        return sorted(self.commands, key=lambda name: (rank.get(name, len(rank)), name))


app = typer.Typer(
    name="twin",
    cls=_PipelineGroup,
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


# Groups (typer sub-apps) and single commands, in pipeline order. A single command gets a ``short_help`` (its
# line in `twin --help`), never a ``help``: that would replace its docstring on its own `--help` page.
app.add_typer(warehouse.app, name="warehouse", help="Import, export and inspect the data warehouse.")
app.add_typer(etl.app, name="etl", help="Crawl links into the warehouse.")
app.add_typer(validate.app, name="validate", help="Validate warehouse data with Great Expectations.")
app.add_typer(features.app, name="features", help="Clean, chunk and embed documents into the feature store.")
app.add_typer(datasets.app, name="datasets", help="Build, list, show and export instruction and preference datasets.")
app.add_typer(train.app, name="train", help="Fine-tune the twin (SFT with LoRA, then DPO).")
app.command("evaluate", short_help="Evaluate a model version against a baseline (production) and gate it.")(
    evaluate.app
)
app.add_typer(registry.app, name="registry", help="List, show, promote, archive and roll back model versions.")
app.command("serve", short_help="Serve the twin over HTTP (KServe model server).")(serve.app)
app.add_typer(rag.app, name="rag", help="Search the feature store and ask the twin from the command line.")
app.add_typer(
    deploy.app, name="deploy", help="Roll a model out on KServe: canary, promote, rollback, status, analyse, watch."
)
app.add_typer(monitor.app, name="monitor", help="Drift reports and alerts with Evidently.")
app.command("demo", short_help="Run the whole pipeline on the sample corpus and the embedded stores.")(demo.app)


def _click_exception() -> type[Exception]:
    """click's base exception as typer uses it (typer ≥ 0.25 vendors click as ``typer._click``)."""
    return next(c for c in typer.BadParameter.__mro__ if c.__name__ == "ClickException")


def _command_line_context(argv: list[str]) -> typer.Context:
    """The context of the command ``argv`` names, for an error raised before it had one (an option given
    without its value): the command's path and usage for the message, its step name for the JSON line."""
    command = typer.main.get_command(app)
    ctx = command.context_class(command, info_name="twin", **command.context_settings)
    args = iter(argv)
    for token in args:
        commands = getattr(ctx.command, "commands", {})
        if token in commands:
            ctx = commands[token].context_class(commands[token], info_name=token, parent=ctx)
        elif token.startswith("-") and "=" not in token:
            option = next((p for p in ctx.command.params if token in (*p.opts, *p.secondary_opts)), None)
            if option is not None and not getattr(option, "is_flag", False) and option.nargs > 0:
                next(args, None)  # its value, not a command name
        else:
            break
    return ctx


def _usage_error(exc: Exception) -> None:
    """A malformed command line: typer's message on stderr, the JSON error line on stdout, exit 2."""
    from typer import rich_utils

    from twin_core.cli.protocol import emit_result, error_result

    exit_code = int(getattr(exc, "exit_code", 2))
    if getattr(exc, "ctx", None) is None and hasattr(exc, "ctx"):  # click's parser errors carry none
        exc.ctx = _command_line_context(sys.argv[1:])
    rich_utils.rich_format_error(exc)  # type: ignore[arg-type]
    if type(exc).__name__ == "NoArgsIsHelpError":  # `twin` or `twin <group>` alone: help, not a command run
        sys.exit(exit_code)
    ctx = getattr(exc, "ctx", None)
    path = ctx.command_path.split()[1:] if ctx is not None else []
    name = getattr(ctx.command.callback, "twin_step", None) if ctx is not None else None  # the step's own name
    message = exc.format_message() if hasattr(exc, "format_message") else str(exc)
    emit_result(error_result(name or ".".join(path) or "twin", message, "usage"))
    sys.exit(exit_code)


def main() -> None:
    """The ``twin`` entry point; the process ends with the command's exit code, whatever native thread pools do
    at teardown (``process_exit``)."""
    from twin_core.cli.process_exit import run_then_leave

    run_then_leave(_main)


def _main() -> None:
    # transformers' integrations import comet_ml before our tracking code runs, and comet_ml reads its
    # settings on import: never send crash reports to Comet's Sentry from a pipeline step, no auto-logging.
    quiet_comet()
    quiet_library_bars()
    try:
        code = app(standalone_mode=False)  # usage errors come back here instead of exiting
    except _click_exception() as exc:
        _usage_error(exc)
    except typer.Abort:
        sys.exit(1)
    sys.exit(code if isinstance(code, int) else 0)


if __name__ == "__main__":
    main()
