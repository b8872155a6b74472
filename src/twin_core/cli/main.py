"""`twin`: every pipeline step as a command. Each command ends by printing one JSON result line.

Group modules import only typer at module level; heavy libraries load inside the commands, so
``twin --help`` answers in well under a second.
"""

from __future__ import annotations

import importlib

import typer

from twin_core import __version__
from twin_core.cli.logs import setup_logging
from twin_core.cli.placeholder import PLACEHOLDER_CONTEXT, placeholder_command

# (name, module holding `app`, help) — a None module is a stage not built yet.
GROUPS: list[tuple[str, str | None, str]] = [
    ("warehouse", "twin_core.cli.warehouse", "Import, export and inspect the data warehouse."),
    ("etl", None, "Crawl links into the warehouse."),
    ("validate", None, "Validate warehouse data with Great Expectations."),
    ("features", None, "Clean, chunk and embed documents into the feature store."),
    ("datasets", None, "Build instruction and preference datasets."),
    ("train", None, "Fine-tune the twin (SFT with LoRA, then DPO)."),
    ("evaluate", None, "Evaluate a candidate model against production."),
    ("registry", None, "List and promote model versions."),
    ("serve", None, "Serve the twin over HTTP (KServe model server)."),
    ("rag", None, "Search the feature store and ask the twin from the command line."),
    ("deploy", None, "Roll a model out on KServe (canary, promote, rollback)."),
    ("monitor", None, "Drift reports and alerts with Evidently."),
    ("demo", "twin_core.cli.demo", "Run the whole pipeline on the sample corpus and the embedded stores."),
]

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


@app.callback()
def root(
    log_level: str = typer.Option(None, "--log-level", envvar="TWIN_LOG_LEVEL", help="DEBUG, INFO, WARNING."),
    version: bool = typer.Option(
        False, "--version", callback=_version, is_eager=True, help="Print the version."
    ),
) -> None:
    setup_logging(log_level)


def _register() -> None:
    for name, module, help_text in GROUPS:
        if module is None:
            app.command(name, help=f"(not yet available) {help_text}", context_settings=PLACEHOLDER_CONTEXT)(
                placeholder_command(name)
            )
            continue
        sub = importlib.import_module(module).app
        if isinstance(sub, typer.Typer):
            app.add_typer(sub, name=name, help=help_text)
        else:  # a single command
            app.command(name, help=help_text)(sub)


_register()


def main() -> None:
    app()


if __name__ == "__main__":
    main()
