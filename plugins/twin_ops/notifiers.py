"""On-call alerts. Log-only by default; TWIN_ALERT_WEBHOOK_URL posts JSON to a webhook
(Slack-compatible ``text`` field), so any chat or paging tool with an incoming webhook works.

Drift alerts (``DriftAlertNotifier``: a newly drifted signal, a reminder for one still drifting, a
resolved one) and canary rollbacks (``send_rollback_alerts``) also go to Slack through the Slack
provider's ``SlackWebhookNotifier`` when TWIN_ALERT_SLACK_CONN_ID names an Airflow connection (type
slackwebhook). A drift alert (or reminder) increments the StatsD counter ``twin.drift_detected`` that the
chart's PrometheusRule alerts on (``airflow_twin_drift_detected`` with the default ``airflow`` prefix);
every drift check adds 0 to it, so the series exists before its first drift.
An alert counts as delivered when one configured channel took it (the log alone when none is configured,
the local default); ``send_drift_alerts`` and ``send_rollback_alerts`` raise when an alert reached no
configured channel, so the task is retried and its failure alert fires.
Runs that take too long raise ``deadline_missed`` through every DAG's ``DeadlineAlert``.

Every webhook alert carries ``dedup_key`` (also sent as the ``Idempotency-Key`` header): the same for the
same event however often it is sent, so a retried task that sends an alert again (delivery is at least
once) is one incident for a receiver that de-duplicates (PagerDuty's ``dedup_key``, Opsgenie's ``alias``)."""

from __future__ import annotations

import http.client
import json
import logging
import os
import urllib.parse
import urllib.request
from typing import Any

from airflow.sdk import BaseNotifier

log = logging.getLogger("twin.alerts")

WEBHOOK_VAR = "TWIN_ALERT_WEBHOOK_URL"
SLACK_VAR = "TWIN_ALERT_SLACK_CONN_ID"


# Which task (a mapped task's map index in brackets) and why (the exception the task runner puts in the
# callback context; the `twin` step's error, e.g. a failed link and its reason): the two ends of a task alert.
_TASK = (
    "{{ dag.dag_id }}.{{ ti.task_id }}"
    "{% if ti.map_index is defined and ti.map_index is not none and ti.map_index >= 0 %}[{{ ti.map_index }}]{% endif %}"
)
_REASON = "{% if exception is defined and exception %}: {{ exception | string | truncate(1000, True) }}{% endif %}"
# A task failure, and which run.
FAILURE_MESSAGE = _TASK + " failed (run {{ run_id }})" + _REASON
# A failed try that Airflow retries, for a step whose failure cannot wait for its last try (e.g. `watch`: its
# canary keeps its share of the traffic, unwatched, until a later try follows it again).
RETRY_MESSAGE = _TASK + " try {{ ti.try_number }} failed, retried (run {{ run_id }})" + _REASON


class AlertNotDelivered(RuntimeError):
    """An alert reached none of the configured channels (retryable: the task fails, Airflow retries it)."""


def _shown(url: str) -> str:
    """A webhook URL for logs: scheme and host only (its path is often the secret)."""
    parts = urllib.parse.urlsplit(url)
    if parts.scheme and parts.netloc:
        return f"{parts.scheme}://{parts.netloc}/…"
    return url.split("/", 1)[0][:40] + ("/…" if "/" in url else "")


def webhook_url() -> str | None:
    """TWIN_ALERT_WEBHOOK_URL; None when unset. A value that is not an http(s) URL with a host raises
    ValueError naming the variable: read when an alert is sent, never when a DAG is parsed."""
    url = (os.environ.get(WEBHOOK_VAR) or "").strip()
    if not url:
        return None
    parts = urllib.parse.urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ValueError(
            f"{WEBHOOK_VAR} {_shown(url)!r} is not an http(s) URL with a host "
            "(e.g. https://hooks.slack.com/services/…): alert not sent there"
        )
    return url


def alert_key(*parts: Any) -> str:
    """The de-duplication key of one event, e.g. ``llm-twin:drift:ada:query_length:drift:<window key>``."""
    return ":".join(["llm-twin", *("-" if p is None else str(p) for p in parts)])


def post_webhook(url: str, payload: dict[str, Any]) -> bool:
    """POST ``payload`` as JSON (its ``dedup_key`` also as the Idempotency-Key header); True when the webhook
    took it. A failure is logged, never raised."""
    try:
        body = json.dumps(payload, default=str).encode()
        headers = {"Content-Type": "application/json"}
        if payload.get("dedup_key"):
            headers["Idempotency-Key"] = str(payload["dedup_key"])
        req = urllib.request.Request(url, data=body, headers=headers)
        urllib.request.urlopen(req, timeout=10).close()
    except (OSError, ValueError, http.client.HTTPException) as exc:  # down, refused, malformed: one failed try
        log.error("alert webhook %s failed: %s", _shown(url), str(exc).replace(url, _shown(url)))
        return False
    return True


def send_webhook(payload: dict[str, Any]) -> bool | None:
    """``payload`` to TWIN_ALERT_WEBHOOK_URL: None when unset, False when malformed or refused."""
    try:
        url = webhook_url()
    except ValueError as exc:
        log.error("%s", exc)
        return False
    return None if url is None else post_webhook(url, payload)


def send_slack(text: str, context: dict[str, Any]) -> bool | None:
    """``text`` to the Slack connection TWIN_ALERT_SLACK_CONN_ID: None when unset, False when it failed."""
    conn_id = (os.environ.get(SLACK_VAR) or "").strip()
    if not conn_id:
        return None
    try:
        from airflow.providers.slack.notifications.slack_webhook import SlackWebhookNotifier

        SlackWebhookNotifier(slack_webhook_conn_id=conn_id, text=text).notify(context)
    except Exception as exc:  # a missing connection or Slack being down: this channel failed
        log.error("Slack alert through connection %s failed: %s", conn_id, exc)
        return False
    return True


def deliver(text: str, payload: dict[str, Any], context: dict[str, Any]) -> dict[str, bool]:
    """Send one alert to every configured channel: {channel: took it}; {} when none is configured."""
    outcome = {"webhook": send_webhook({"text": text, **payload}), "slack": send_slack(text, context)}
    return {name: ok for name, ok in outcome.items() if ok is not None}


def _run_fields(context: dict[str, Any]) -> dict[str, Any]:
    """The DAG and run an alert came from, for its webhook payload."""
    dag_run = context.get("dag_run")
    return {
        "dag_id": getattr(context.get("dag"), "dag_id", None),
        "run_id": getattr(dag_run, "run_id", None) or context.get("run_id"),
    }


def delivered(channels: dict[str, bool]) -> bool:
    """An alert is delivered when a configured channel took it, or when none is configured (log only)."""
    return not channels or any(channels.values())


class TwinAlertNotifier(BaseNotifier):
    """The task-failure alert every task has (``on_failure_callback``): log, and the JSON webhook.

    The message is rendered per call, not in place: one instance serves every task of a DAG (default_args),
    and several tasks can fail in one process (``dag.test``). A webhook that is down or malformed is
    logged: the callback never raises."""

    template_fields = ()

    def __init__(self, message: str = FAILURE_MESSAGE, kind: str = "failure") -> None:
        super().__init__()
        self.message = message
        self.kind = kind  # the de-duplication key's kind: "failure", or "retry" (on_retry_callback)

    def text(self, context: dict[str, Any]) -> str:
        return str(self.render_template(self.message, context, self.get_template_env(dag=context.get("dag"))))

    def notify(self, context: dict[str, Any]) -> None:
        text = self.text(context)
        log.error("ALERT: %s", text)
        send_webhook({"text": text, "dedup_key": failure_key(context, self.kind)})


def failure_key(context: dict[str, Any], kind: str = "failure") -> str:
    """One task instance's failure (or failed try): DAG, run, task, map index and try."""
    ti, run = context.get("ti"), _run_fields(context)
    map_index = getattr(ti, "map_index", -1)
    return alert_key(
        kind,
        run["dag_id"],
        run["run_id"],
        getattr(ti, "task_id", None),
        map_index if isinstance(map_index, int) and map_index >= 0 else None,
        getattr(ti, "try_number", None),
    )


DRIFT_METRIC = "twin.drift_detected"
_DRIFT_KINDS = {"drift": "drift", "reminder": "drift_reminder", "resolved": "drift_resolved"}


def drift_message(alert: dict[str, Any]) -> str:
    """One line per alert: a new drift, a reminder of one still drifting, or a resolved one."""
    window = alert.get("window") or {}
    who = f" for {alert['author']}" if alert.get("author") else ""
    kind = alert.get("kind", "drift")
    head = {"reminder": "LLM Twin drift still on", "resolved": "LLM Twin drift resolved"}.get(kind, "LLM Twin drift")
    where = "within" if kind == "resolved" else alert.get("drift_when", "above")
    since = f"; drifting since {alert.get('since')}" if kind in ("reminder", "resolved") else ""
    # the counts behind the value, in words, where the signal gives them (retrieval coverage: "0 of 412 …")
    detail = f"; {alert['detail']}" if alert.get("detail") else ""
    return (
        f"{head}{who}: {alert['signal']} = {alert['value']} {where} threshold {alert['threshold']} "
        f"({alert.get('method', '?')}){detail}, window {window.get('start')} .. {window.get('end')}{since}; "
        f"report: {alert.get('html') or alert.get('report')}"  # the readable page (older results: the folder)
    )


def emit_drift_metric(signal: str | None, count: int = 1) -> None:
    """Add ``count`` to the StatsD counter the chart's PrometheusRule expects (no-op when StatsD is off);
    0 creates the series without an event."""
    from airflow.sdk.observability.stats import Stats

    try:
        Stats.incr(DRIFT_METRIC, count=count, tags={"signal": signal} if signal else None)
    except Exception as exc:  # metrics must never fail an alert
        log.error("StatsD %s failed: %s", DRIFT_METRIC, exc)


class DriftAlertNotifier(BaseNotifier):
    """One alert of one signal and window (``kind`` drift, reminder or resolved): log, webhook, Slack; a
    drift or a reminder increments the StatsD counter."""

    template_fields = ()

    def __init__(self, alert: dict[str, Any]) -> None:
        super().__init__()
        self.alert = alert

    def deliver(self, context: dict[str, Any]) -> dict[str, bool]:
        """Send it; {channel: took it} ({} when no channel is configured: the log is the alert)."""
        text = drift_message(self.alert)
        kind = self.alert.get("kind", "drift")
        log.warning("DRIFT ALERT: %s", text)
        if kind != "resolved":
            emit_drift_metric(str(self.alert.get("signal")))
        payload = {
            "kind": _DRIFT_KINDS.get(kind, "drift"),
            "dedup_key": drift_key(self.alert),
            "alert": self.alert,
            **_run_fields(context),
        }
        return deliver(text, payload, context)

    def notify(self, context: dict[str, Any]) -> None:
        self.deliver(context)


def drift_key(alert: dict[str, Any]) -> str:
    """One alert of one signal, author and window: a new drift, a reminder or a resolution."""
    window = alert.get("window") or {}
    where = window.get("key") or f"{window.get('start')}/{window.get('end')}"
    return alert_key("drift", alert.get("author") or "all", alert.get("signal"), alert.get("kind", "drift"), where)


def send_drift_alerts(result: dict[str, Any] | None, context: dict[str, Any]) -> list[dict[str, Any]]:
    """Deliver the alerts due of a `twin monitor drift --alert` result; the alerts delivered.

    Nothing is marked as sent here: the caller records the returned alerts (`twin monitor record-alerts`).
    Every alert is tried; then ``AlertNotDelivered`` is raised if one reached no configured channel (the
    task is retried: the alerts it did deliver go out again, none is lost). Each check also adds 0 to the
    StatsD drift counter of each of its signals."""
    result = result or {}
    for signal in result.get("signals") or [None]:
        emit_drift_metric(signal, 0)
    sent, lost = [], []
    for alert in result.get("alerts") or []:
        alert = {"kind": "drift", **alert, "author": result.get("author")}
        channels = DriftAlertNotifier(alert).deliver(context)
        (sent if delivered(channels) else lost).append(alert)
    if lost:
        names = ", ".join(f"{a['kind']}:{a['signal']}" for a in lost)
        raise AlertNotDelivered(
            f"{len(lost)} of {len(lost) + len(sent)} drift alerts reached no alert channel ({names}); "
            "nothing is recorded as sent: the retry sends them again (see the errors above)"
        )
    return sent


def _side(name: str, side: dict[str, Any]) -> str:
    ci = side.get("success_ci95")
    interval = f" (95% CI [{ci[0]}, {ci[1]}])" if ci else ""
    return (
        f"{name}: {side.get('requests')} requests, {side.get('counted')} counted, {side.get('errors')} errors, "
        f"success rate {side.get('success_rate')}{interval}, p95 {side.get('p95_ms')} ms"
    )


def rollback_message(watched: dict[str, Any]) -> str:
    """A rolled-back canary in words, with the numbers of its last analysis (as `twin deploy watch` gives)."""
    model = watched.get("model")
    weight = f" at {watched['weight']}% traffic" if watched.get("weight") is not None else ""
    text = f"LLM Twin canary {model} rolled back{weight}: {'; '.join(watched.get('reasons') or []) or 'no reason'}."
    analysis = watched.get("analysis") or {}
    if not analysis:  # e.g. the watch timed out right after a not-due analysis: the numbers are in the registry
        return f"{text} No analysis numbers in the watch result: `twin registry show {model}` has its history."
    window = analysis.get("window") or [None, None]
    sides = [_side(n, watched[n]) for n in ("canary", "production") if watched.get(n)]
    return (
        f"{text} {'; '.join(sides)}; analysis window {window[0]} .. {window[-1]}, "
        f"failed analyses {watched.get('failed_checks')}/{analysis.get('threshold')}"
    )


def send_rollback_alerts(watched: list[dict[str, Any] | None], context: dict[str, Any]) -> list[str]:
    """Alert on each rolled-back canary of the watch results (log, webhook, Slack); the models alerted.
    Raises ``AlertNotDelivered`` after trying every one if one reached no configured channel."""
    sent, lost = [], []
    for w in (w for w in watched or [] if w and w.get("decision") == "rollback"):
        text = rollback_message(w)
        log.error("ROLLBACK ALERT: %s", text)
        numbers = {k: w.get(k) for k in ("weight", "failed_checks", "canary", "production", "analysis", "reasons")}
        payload = {
            "kind": "rollback",
            "dedup_key": alert_key("rollback", w.get("model")),  # a version is rolled back once
            "model": w.get("model"),
            **numbers,
            **_run_fields(context),
        }
        (sent if delivered(deliver(text, payload, context)) else lost).append(str(w.get("model")))
    if lost:
        raise AlertNotDelivered(
            f"rollback alert of {', '.join(lost)} reached no alert channel (see the errors above): retried"
        )
    return sent


async def deadline_missed(context: dict[str, Any] | None = None, **kwargs: Any) -> None:
    """``DeadlineAlert`` callback (runs in the triggerer): a DAG run took longer than its deadline."""
    import asyncio

    dag_run = (context or {}).get("dag_run") or {}
    dag_id = dag_run.get("dag_id") if isinstance(dag_run, dict) else None
    run_id = dag_run.get("run_id") if isinstance(dag_run, dict) else None
    text = f"LLM Twin: DAG {dag_id} run {run_id} missed its deadline ({kwargs.get('interval', '?')})"
    log.error("ALERT: %s", text)
    payload = {"text": text, "kind": "deadline", "dag_id": dag_id, "dedup_key": alert_key("deadline", dag_id, run_id)}
    await asyncio.to_thread(send_webhook, payload)
