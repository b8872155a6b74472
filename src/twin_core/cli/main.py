"""`twin`: every pipeline step as a command. Each command ends by printing one JSON result line.

Group modules import only typer at module level; heavy libraries load inside the commands, so
``twin --help`` answers in well under a second.
"""

from __future__ import annotations

import importlib
import os

import typer

from twin_core import __version__
from twin_core.cli.logs import setup_logging
from twin_core.cli.placeholder import PLACEHOLDER_CONTEXT, placeholder_command

# (name, module holding `app`, help). A module that does not exist yet is a stage not built yet:
# its command says so and exits 5.
GROUPS: list[tuple[str, str, str]] = [
    ("warehouse", "twin_core.cli.warehouse", "Import, export and inspect the data warehouse."),
    ("etl", "twin_core.cli.etl", "Crawl links into the warehouse."),
    ("validate", "twin_core.cli.validate", "Validate warehouse data with Great Expectations."),
    ("features", "twin_core.cli.features", "Clean, chunk and embed documents into the feature store."),
    ("datasets", "twin_core.cli.datasets", "Build instruction and preference datasets."),
    ("train", "twin_core.cli.train", "Fine-tune the twin (SFT with LoRA, then DPO)."),
    ("evaluate", "twin_core.cli.evaluate", "Evaluate a candidate model against production."),
    ("registry", "twin_core.cli.registry", "List and promote model versions."),
    ("serve", "twin_core.cli.serve", "Serve the twin over HTTP (KServe model server)."),
    ("rag", "twin_core.cli.rag", "Search the feature store and ask the twin from the command line."),
    ("deploy", "twin_core.cli.deploy", "Roll a model out on KServe (canary, promote, rollback)."),
    ("monitor", "twin_core.cli.monitor", "Drift reports and alerts with Evidently."),
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
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True, help="Print the version."),
) -> None:
    setup_logging(log_level)


def _register() -> None:
    for name, module, help_text in GROUPS:
        try:
            sub = importlib.import_module(module).app
        except ModuleNotFoundError as exc:
            if exc.name != module:
                raise
            app.command(name, help=f"(not yet available) {help_text}", context_settings=PLACEHOLDER_CONTEXT)(
                placeholder_command(name)
            )
            continue
        if isinstance(sub, typer.Typer):
            app.add_typer(sub, name=name, help=help_text)
        else:  # a single command
            app.command(name, help=help_text)(sub)


_register()


def main() -> None:
    # transformers' Trainer imports comet_ml (its integration) before our tracking code runs; comet_ml
    # reads this on import: never send crash reports to Comet's Sentry from a pipeline step.
    os.environ.setdefault("COMET_ERROR_TRACKING_ENABLE", "false")
    app()


if __name__ == "__main__":
    main()
