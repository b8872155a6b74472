"""`twin etl`: crawl an author's links into the warehouse."""

from __future__ import annotations

from pathlib import Path

import typer

from twin_core.cli.protocol import step

app = typer.Typer(help="Crawl links into the warehouse.", no_args_is_help=True)


@app.command("crawl")
@step("etl.crawl")
def crawl(
    user: str = typer.Option(None, "--user", "-u", help='Author full name, e.g. "Ada Quillfeather".'),
    link: list[str] = typer.Option(None, "--link", "-l", help="A link to crawl (repeatable)."),
    config: Path = typer.Option(None, "--config", "-c", help="YAML file with user_full_name, links, settings."),
    setting: list[str] = typer.Option(None, "--setting", help="Override a setting: key=value (repeatable)."),
) -> dict:
    """Crawl links (articles, Medium, LinkedIn, git repositories) and upsert raw documents. Idempotent."""
    from twin_core.errors import InputError
    from twin_core.etl.config import EtlConfig, load_config, parse_setting_overrides
    from twin_core.etl.runner import run_crawl
    from twin_core.progress import progress
    from twin_core.settings import get_settings, load_settings

    cfg = load_config(config) if config else EtlConfig()
    overrides = {**cfg.settings, **parse_setting_overrides(setting or [])}
    settings = load_settings(**overrides) if overrides else get_settings()
    full_name = user or cfg.user_full_name
    if not full_name or not full_name.strip():
        raise InputError('no author: give --user "First Last" or user_full_name in the --config file')
    links = [*cfg.links, *(link or [])]
    report = run_crawl(settings, full_name, links, progress=progress).as_dict()
    totals = report["totals"]
    if totals["failed"]:
        report["status"] = "failed" if totals["failed"] == totals["links"] else "partial"
    return report


@app.command("crawlers")
@step("etl.crawlers")
def crawlers() -> dict:
    """List the registered crawlers (built-ins and entry-point plugins), highest priority first."""
    from twin_core.etl.dispatcher import Dispatcher

    found = Dispatcher.from_entry_points().crawlers
    return {"crawlers": [{"name": c.name, "priority": c.priority, "class": type(c).__module__} for c in found]}
