"""`twin monitor`: Evidently drift reports over the inference log, and the alerts they raise."""

from __future__ import annotations

import typer

from twin_core.cli.protocol import step

app = typer.Typer(help="Drift reports and alerts with Evidently.", no_args_is_help=True)


def text_tools(settings: object) -> object:
    """The monitoring text tools over the feature pipeline's embedder (loaded now)."""
    from twin_core.features.embedding_model import load_embedder
    from twin_core.monitoring import TextTools

    return TextTools.from_embedder(load_embedder(settings))


def lazy_text_tools(settings: object) -> object:
    """``text_tools`` loaded on first use: an empty or tiny window never loads a model."""
    from twin_core.monitoring import LazyTextTools

    return LazyTextTools(lambda: text_tools(settings))


def window_length(settings: object, window: str | None) -> str:
    """--window, else TWIN_MONITOR_WINDOW, checked: a wrong length named by where it came from (bad input for
    the option, a config error for the variable)."""
    from twin_core.errors import ConfigError, InputError
    from twin_core.monitoring.windows import parse_duration

    length = window or settings.monitor.window  # type: ignore[attr-defined]
    try:
        parse_duration(length, option="--window" if window else "TWIN_MONITOR_WINDOW")
    except InputError as exc:
        if window:
            raise
        raise ConfigError(str(exc)) from None
    return length


@app.command("drift")
@step("monitor.drift")
def drift(
    window: str = typer.Option(None, "--window", help="Window length: 30m, 1h, 1d (default TWIN_MONITOR_WINDOW)."),
    end: str = typer.Option(None, "--end", help="Window end, ISO 8601 UTC (default: now)."),
    reference: str = typer.Option(
        None,
        "--reference",
        help="previous (the window(s) before; default), baseline (a pinned window, see --baseline-end) or "
        "training (an informational comparison with the latest instruct dataset: never alerts).",
    ),
    baseline_end: str = typer.Option(
        None, "--baseline-end", help="End of the pinned baseline window (ISO 8601 UTC), for --reference baseline."
    ),
    plots: bool = typer.Option(
        False,
        "--plots",
        help="Also write Evidently's HTML + JSON reports (one per scope, and the embeddings' t-SNE plot): "
        "the costly part, off by default.",
    ),
    author: str = typer.Option(None, "--author", help="Only this author's requests (full name, slug or id)."),
    alert: bool = typer.Option(
        False,
        "--alert",
        help="List the alerts due under 'alerts' (new drift, reminders, resolved signals; the DAG delivers them, "
        "then records them with `twin monitor record-alerts`).",
    ),
) -> dict:
    """Compare one window of the inference log with a reference; write a readable report.html and result.json.

    Both go to monitoring/<author|all>/<window>/ in the artifact store (report.html first, result.json last:
    the result's 'html' is the page); --plots adds Evidently's HTML reports."""
    from twin_core.cli.authors import require_author
    from twin_core.monitoring import parse_window, run_drift_check
    from twin_core.settings import get_settings
    from twin_core.stores.artifacts import open_artifact_store
    from twin_core.stores.warehouse import open_warehouse

    settings = get_settings()
    author = (author or "").strip() or None  # the DAG passes "" for every author
    author = require_author(settings, author)  # a slug or id as the full name the request log is keyed on
    reference = (reference or "").strip() or None
    win = parse_window(window_length(settings, window), end)
    warehouse = open_warehouse(settings)
    artifacts = open_artifact_store(settings)
    return run_drift_check(
        settings,
        win,
        tools=lazy_text_tools(settings),
        warehouse=warehouse,
        artifacts=artifacts,
        author=author,
        reference=reference,
        baseline_end=(baseline_end or "").strip() or None,
        alert=alert,
        plots=plots,
    )


@app.command("record-alerts")
@step("monitor.record_alerts")
def record_alerts(
    delivered: str = typer.Option(
        ..., "--delivered", help="The alerts a channel took, KIND:SIGNAL comma-separated (drift:query_length,...)."
    ),
    window: str = typer.Option(None, "--window", help="The checked window's length (as for `twin monitor drift`)."),
    end: str = typer.Option(..., "--end", help="The checked window's end, ISO 8601 UTC."),
    author: str = typer.Option(
        None, "--author", help="The checked author (full name, slug or id; empty = every author)."
    ),
) -> dict:
    """Record delivered drift alerts: the window's alerts.json, then the author's alert_state.json.

    Only the signals that `twin monitor drift` reported for that window can be recorded."""
    from twin_core.cli.authors import require_author
    from twin_core.errors import InputError
    from twin_core.monitoring import parse_window
    from twin_core.monitoring.alert_state import parse_delivered, record_delivered
    from twin_core.settings import get_settings
    from twin_core.stores.artifacts import open_artifact_store

    settings = get_settings()
    alerts = parse_delivered(delivered)
    if not (end or "").strip():
        raise InputError("--end: the checked window's end is required")
    win = parse_window(window_length(settings, window), end)
    who = require_author(settings, (author or "").strip() or None)  # as `drift` names it: the same folder
    return record_delivered(open_artifact_store(settings), who, win, alerts)
