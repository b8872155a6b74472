"""`twin demo`: the main job end to end on the embedded stores, stage by stage.

Each stage is a function returning a summary dict; later stages are appended to ``STAGES`` as they
are built. Stages run as subprocess-free function calls in this process, in order.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import typer

from twin_core.cli.protocol import step

log = logging.getLogger(__name__)
SAMPLE_DIR = Path(__file__).resolve().parents[3] / "data" / "sample"


def stage_import(sample: Path) -> dict[str, Any]:
    from twin_core.settings import get_settings
    from twin_core.stores.warehouse import open_warehouse
    from twin_core.warehouse_io import import_paths

    wh = open_warehouse(get_settings())
    report = import_paths(wh, [sample])
    return {"imported": report.counts, "rejected": len(report.rejected), "stats": wh.stats()["categories"]}


# (name, function) in pipeline order. Each later issue appends its stage here.
STAGES: list[tuple[str, Callable[[Path], dict[str, Any]]]] = [
    ("warehouse.import", stage_import),
]


def app(
    sample: Path = typer.Option(
        SAMPLE_DIR, "--sample", help="Sample corpus folder (Handbook backup format)."
    ),
) -> None:
    """Run the main job on the sample corpus and the embedded stores, printing what each stage did."""
    _run(sample)


@step("demo")
def _run(sample: Path) -> dict:
    from twin_core.settings import get_settings

    settings = get_settings()
    log.info("demo: TWIN_HOME=%s", settings.home.resolve())
    results: dict[str, Any] = {}
    for name, fn in STAGES:
        log.info("demo: stage %s ...", name)
        results[name] = fn(sample)
        log.info("demo: stage %s done: %s", name, results[name])
    return {"home": str(settings.home.resolve()), "stages_ran": [n for n, _ in STAGES], "results": results}
