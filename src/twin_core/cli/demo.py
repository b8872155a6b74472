"""`twin demo`: the main job end to end on the embedded stores, stage by stage.

Each stage is a function of ``twin_core.demo`` returning a summary dict (``stages()`` lists them in
pipeline order). Stages run as function calls in this process, in order.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import typer

from twin_core.cli.protocol import step
from twin_core.demo import sample_dir

log = logging.getLogger(__name__)


def stage_import(sample: Path) -> dict[str, Any]:
    from twin_core.progress import progress
    from twin_core.settings import get_settings
    from twin_core.stores.warehouse import open_warehouse
    from twin_core.stores.warehouse_io import import_paths

    wh = open_warehouse(get_settings())
    report = import_paths(wh, [sample], progress=progress)
    return {"imported": report.counts, "rejected": len(report.rejected), "stats": wh.stats()["categories"]}


def stages() -> list[tuple[str, Callable[[Path], dict[str, Any]]]]:
    """(name, stage function) in pipeline order; each takes the sample folder and returns a summary.
    Imported here, not at module import, so `twin --help` stays light."""
    from twin_core.demo import datasets, etl, evaluation, features, monitoring, serving, training, validation

    return [
        ("warehouse.import", stage_import),
        ("etl.crawl", etl.stage),
        ("validate.raw", validation.stage),
        ("features.run", features.stage),
        ("datasets.build", datasets.stage),
        ("train.sft", training.stage),
        ("evaluate", evaluation.stage),
        ("serve.ask", serving.stage),
        ("monitor.drift", monitoring.stage),
    ]


def app(
    sample: Path = typer.Option(sample_dir(), "--sample", help="Sample corpus folder (Handbook backup format)."),
) -> None:
    """Run the main job on the sample corpus and the embedded stores, printing what each stage did."""
    _run(sample)


@step("demo")
def _run(sample: Path) -> dict:
    from twin_core.settings import get_settings

    settings = get_settings()
    log.info("demo: TWIN_HOME=%s", settings.home.resolve())
    results: dict[str, Any] = {}
    ran: list[str] = []
    seconds: dict[str, float] = {}
    for name, fn in stages():
        log.info("demo: stage %s ...", name)
        started = time.perf_counter()
        results[name] = fn(sample)
        seconds[name] = time.perf_counter() - started
        ran.append(name)
        log.info("demo: stage %s done: %s", name, results[name])
    _print_summary(settings, ran, seconds, results)
    return {"home": str(settings.home.resolve()), "stages_ran": ran, "results": results}


def _print_summary(settings: Any, ran: list[str], seconds: dict[str, float], results: dict[str, Any]) -> None:
    """A human summary on stderr: which stages ran, the warehouse stats, and the twin's answer."""
    from rich.console import Console
    from rich.table import Table

    from twin_core.cli.warehouse import stats_table
    from twin_core.stores.warehouse import open_warehouse

    console = Console(stderr=True)
    stages = Table(title="demo stages")
    stages.add_column("stage")
    stages.add_column("status")
    stages.add_column("seconds", justify="right")
    for name in ran:
        stages.add_row(name, "ran", f"{seconds[name]:.1f}")
    console.print(stages)

    console.print(stats_table(open_warehouse(settings).stats(), title=f"warehouse ({settings.home.resolve()})"))

    ask = results.get("serve.ask")
    if ask:
        console.print(f"[bold]Q:[/bold] {ask.get('question')}")
        console.print(f"[bold]A:[/bold] {ask.get('answer')}")
        for link in dict.fromkeys(ask.get("sources", [])):
            console.print(f"   source: {link}")
