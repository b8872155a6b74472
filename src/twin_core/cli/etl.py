"""`twin etl`: crawl an author's links into the warehouse."""

from __future__ import annotations

import logging
from pathlib import Path

import typer

from twin_core.cli.protocol import step

log = logging.getLogger(__name__)
app = typer.Typer(help="Crawl links into the warehouse.", no_args_is_help=True)


@app.command("crawl")
@step("etl.crawl")
def crawl(
    user: str = typer.Option(None, "--user", "-u", help='Author full name, e.g. "Ada Quillfeather".'),
    link: list[str] = typer.Option(None, "--link", "-l", help="A link to crawl (repeatable)."),
    config: Path = typer.Option(None, "--config", "-c", help="YAML file with user_full_name, links, settings."),
    setting: list[str] = typer.Option(None, "--setting", help="Override a setting: key=value (repeatable)."),
) -> dict:
    """Crawl links (articles, Medium, LinkedIn, git repositories) and upsert raw documents. Idempotent.

    Failed links exit 4 (retry) if each may pass later (timeout, 5xx, 429, DNS, store down), else 3 (bad input)."""
    from twin_core.errors import InputError
    from twin_core.etl.config import EtlConfig, load_config, parse_setting_overrides
    from twin_core.etl.runner import run_crawl
    from twin_core.progress import progress
    from twin_core.settings import get_settings, load_settings

    if config is not None and not config.exists():
        raise InputError(f"--config {str(config)!r}: the file does not exist (give the path of a YAML file)")
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
        report.update(_failure_exit(report["links"]))
    return report


def _failure_exit(links: list[dict]) -> dict:
    """Exit 4 (retried) when every failed link failed for a temporary reason (a timeout, a 5xx, a store
    that was unavailable...), else 3 (bad input, not retried): a retry crawls the run again, and the links
    that succeeded are upserted again unchanged. The reasons are classified in twin_core.etl.errors."""
    from twin_core.errors import BackendUnavailable, InputError
    from twin_core.etl.errors import all_temporary, is_temporary

    reasons = sorted({r["reason"] for r in links if r["status"] == "failed"})
    if all_temporary(reasons):
        log.warning("every failed link failed for a temporary reason (%s): exit code 4, retry", ", ".join(reasons))
        return {"retryable": True, "exit_code": BackendUnavailable.exit_code}
    permanent = [r for r in reasons if not is_temporary(r)]
    log.warning("failed links that a retry cannot fix (%s): exit code 3, no retry", ", ".join(permanent))
    return {"retryable": False, "exit_code": InputError.exit_code}


@app.command("crawlers")
@step("etl.crawlers")
def crawlers() -> dict:
    """List the registered crawlers (built-ins and entry-point plugins), highest priority first."""
    from twin_core.etl.dispatcher import Dispatcher

    found = Dispatcher.from_entry_points().crawlers
    return {"crawlers": [{"name": c.name, "priority": c.priority, "class": type(c).__module__} for c in found]}
