"""`twin deploy canary REF [--percent P] [--force] | promote | rollback | status | analyse [--now T] | watch`.

Local target (TWIN_DEPLOY_TARGET=local, or auto with TWIN_EXECUTION=local): registry stages only;
`twin serve` follows them without a restart. Kubernetes target: the InferenceService is patched too.
"""

from __future__ import annotations

from typing import Any

import typer

from twin_core.cli.protocol import step

app = typer.Typer(help="Roll a model out: canary, promote, rollback, status, analyse, watch.", no_args_is_help=True)

AUTHOR = typer.Option(None, "--author", help="Author full name (default: the only author with a canary).")
WATCH_TIMEOUT = "2h"  # the twin_evaluation DAG's default watch_timeout


def _settings() -> Any:
    from twin_core.settings import get_settings

    return get_settings()


@app.command("canary")
@step("deploy.canary")
def canary(
    ref: str = typer.Argument(..., help="Model version: <author_slug>/vNNNN."),
    percent: int = typer.Option(
        None, "--percent", min=1, max=99, help="Share of the author's traffic, 1-99 (default: first step)."
    ),
    reason: str = typer.Option("manual canary", "--reason", help="Why (kept in the registry history)."),
    force: bool = typer.Option(False, "--force", help="Canary an archived (rolled-back) version again."),
) -> dict:
    """Start (or re-weight) a canary: the version serves PERCENT % of its author's traffic."""
    from twin_core.cli.versions import known_version
    from twin_core.deploy.rollout import start_canary
    from twin_core.stores.registry import open_registry

    settings = _settings()
    known_version(open_registry(settings), ref, "ref")  # an unknown one named, with the author's versions
    return start_canary(settings, ref, percent, reason=reason, force=force)


@app.command("promote")
@step("deploy.promote")
def promote(
    ref: str = typer.Argument(None, help="The canary to promote (default: the author's canary)."),
    author: str = AUTHOR,
    reason: str = typer.Option("manual promotion", "--reason", help="Why (kept in the registry history)."),
) -> dict:
    """The canary becomes production (the previous production is archived). No canary: exit 3."""
    from twin_core.deploy.rollout import promote as do_promote

    return do_promote(_settings(), author=author, ref=ref, reason=reason)


@app.command("rollback")
@step("deploy.rollback")
def rollback(
    ref: str = typer.Argument(None, help="The canary to roll back (default: the author's canary)."),
    author: str = AUTHOR,
    reason: str = typer.Option("manual rollback", "--reason", help="Why (kept in the registry history)."),
) -> dict:
    """Archive the canary (production keeps all traffic); with --author and no canary, restore the
    previous production version."""
    from twin_core.deploy.rollout import rollback as do_rollback

    return do_rollback(_settings(), author=author, ref=ref, reason=reason)


@app.command("status")
@step("deploy.status")
def status(author: str = typer.Option(None, "--author", help="Only this author.")) -> dict:
    """Production and canary per author (and the InferenceService on Kubernetes)."""
    from rich.console import Console
    from rich.table import Table

    from twin_core.cli.authors import require_author
    from twin_core.deploy.rollout import status as do_status

    settings = _settings()
    result = do_status(settings, require_author(settings, author))  # a slug or id as the full name
    table = Table("author", "production", "canary", "canary %")
    for entry in result["authors"].values():
        prod, can = entry["production"], entry["canary"]
        table.add_row(
            entry["author"],
            prod["ref"] if prod else "(base model)",
            can["ref"] if can else "-",
            str(can["canary_percent"]) if can else "-",
        )
    Console(stderr=True).print(table)
    return result


NOW = typer.Option(None, "--now", help="Analyse as of this ISO time, past only (default: now); drives the intervals.")


def _duration(value: str | None) -> str | None:
    """A duration option (--interval, --window, --timeout) checked while parsing: a usage error naming it,
    before the settings, the registry or the deploy config are read."""
    if value is None:
        return None
    from twin_core.deploy.analysis import parse_duration
    from twin_core.errors import TwinError

    try:
        seconds = parse_duration(value)
    except TwinError:
        raise typer.BadParameter(f"{value!r}: not a duration (e.g. 30s, 15m, 1h)") from None
    if seconds <= 0:
        raise typer.BadParameter(f"{value!r}: must be longer than 0 (e.g. 30s, 1h)")
    return value


INTERVAL = typer.Option(
    None, "--interval", callback=_duration, help="One analysis per interval (e.g. 5m; configs/deploy.yaml)."
)
WINDOW = typer.Option(
    None, "--window", callback=_duration, help="Log read back from now per analysis (default: the interval)."
)
MIN_REQUESTS = typer.Option(None, "--min-requests", min=1, help="Canary requests in a window before judging (>= 1).")


def _analysis_time(now: str | None) -> Any:
    """--now as a time, never in the future: the analysis is saved in the registry at that time, and every
    later analysis until then would answer "not-due" (the rollout frozen)."""
    from datetime import UTC, datetime

    from twin_core.errors import InputError
    from twin_core.monitoring.windows import parse_time

    if not now:
        return None
    at = parse_time(now, option="--now")
    if at > datetime.now(UTC):
        raise InputError(
            f"--now {now!r} is in the future: an analysis is saved at its time, and the rollout would wait for it"
        )
    return at


def _config(settings: Any, interval: str | None, window: str | None, min_requests: int | None) -> Any:
    from twin_core.deploy.analysis import load_config

    return load_config(settings, interval=interval, window=window, min_requests=min_requests)


@app.command("analyse")
@step("deploy.analyse")
def analyse(
    ref: str = typer.Argument(None, help="The canary (default: the author's canary)."),
    author: str = AUTHOR,
    now: str = NOW,
    interval: str = INTERVAL,
    window: str = WINDOW,
    min_requests: int = MIN_REQUESTS,
) -> dict:
    """One canary analysis over the last window of the request log: hold, fail, step up, promote or roll back.

    The checks and their thresholds are configs/deploy.yaml's `canary` section. Before an interval has passed
    since the last analysis, the answer is "not-due"."""
    from twin_core.deploy.watch import analyse as do_analyse

    settings = _settings()
    at = _analysis_time(now)
    cfg = _config(settings, interval, window, min_requests)
    return do_analyse(settings, author=author, ref=ref, now=at, cfg=cfg)


@app.command("watch")
@step("deploy.watch")
def watch(
    ref: str = typer.Argument(None, help="The canary to watch (default: the author's canary)."),
    author: str = AUTHOR,
    interval: str = INTERVAL,
    window: str = WINDOW,
    min_requests: int = MIN_REQUESTS,
    follow: bool = typer.Option(False, "--follow", help="One analysis every interval until promote or rollback."),
    timeout: str = typer.Option(
        WATCH_TIMEOUT,
        "--timeout",
        callback=_duration,
        help="With --follow: no promotion by then rolls the canary back (fail closed), e.g. 2h.",
    ),
) -> dict:
    """The progressive canary: one analysis as `analyse`, or with --follow one per interval to the end.

    With --follow, the analyses go on until the canary is promoted or rolled back; one that has not earned a
    promotion by --timeout (default 2h, as the twin_evaluation DAG) is rolled back. Each decision and its
    numbers go in the registry history."""
    from twin_core.deploy.analysis import parse_duration
    from twin_core.deploy.watch import watch as do_watch

    settings = _settings()
    timeout_s = parse_duration(timeout)  # never None: a watch without an end would hold a canary for good
    cfg = _config(settings, interval, window, min_requests)
    return do_watch(settings, author=author, ref=ref, cfg=cfg, follow=follow, timeout_s=timeout_s)
