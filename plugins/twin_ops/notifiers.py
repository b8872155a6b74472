"""On-call alerts. Log-only by default; TWIN_ALERT_WEBHOOK_URL posts JSON to a webhook
(Slack-compatible ``text`` field), so any chat or paging tool with an incoming webhook works.

Drift alerts (``DriftAlertNotifier``, one per drifted signal and window) also go to Slack through the
Slack provider's ``SlackWebhookNotifier`` when TWIN_ALERT_SLACK_CONN_ID names an Airflow connection
(type slackwebhook), and increment the StatsD counter ``twin.drift_detected`` that the chart's
PrometheusRule alerts on (``airflow_twin_drift_detected`` with the default ``airflow`` prefix).
Runs that take too long raise ``deadline_missed`` through every DAG's ``DeadlineAlert``."""

from __future__ import annotations

import json
import logging
import os
import urllib.request
from typing import Any

from airflow.sdk import BaseNotifier

log = logging.getLogger("twin.alerts")


# A task failure: which task (a mapped task's map index in brackets), which run, and why (the exception the
# task runner puts in the callback context; the `twin` step's error, e.g. a failed link and its reason).
FAILURE_MESSAGE = (
    "{{ dag.dag_id }}.{{ ti.task_id }}"
    "{% if ti.map_index is defined and ti.map_index is not none and ti.map_index >= 0 %}[{{ ti.map_index }}]{% endif %}"
    " failed (run {{ run_id }})"
    "{% if exception is defined and exception %}: {{ exception | string | truncate(1000, True) }}{% endif %}"
)


class TwinAlertNotifier(BaseNotifier):
    """The task-failure alert every task has (``on_failure_callback``): log, and the JSON webhook.

    The message is rendered per call, not in place: one instance serves every task of a DAG (default_args),
    and several tasks can fail in one process (``dag.test``)."""

    template_fields = ()

    def __init__(self, message: str = FAILURE_MESSAGE) -> None:
        super().__init__()
        self.message = message

    def text(self, context: dict[str, Any]) -> str:
        return str(self.render_template(self.message, context, self.get_template_env(dag=context.get("dag"))))

    def notify(self, context: dict[str, Any]) -> None:
        text = self.text(context)
        log.error("ALERT: %s", text)
        url = os.environ.get("TWIN_ALERT_WEBHOOK_URL")
        if not url:
            return
        post_webhook(url, {"text": text})


def post_webhook(url: str, payload: dict[str, Any]) -> bool:
    """POST ``payload`` as JSON; an alert channel being down is logged, never raised."""
    body = json.dumps(payload, default=str).encode()
    req = urllib.request.Request(url, data=body, headers={"Content-Type": "application/json"})
    try:
        urllib.request.urlopen(req, timeout=10).close()
    except OSError as exc:  # an alert channel being down must not fail the callback chain
        log.error("alert webhook %s failed: %s", url, exc)
        return False
    return True


DRIFT_METRIC = "twin.drift_detected"


def drift_message(alert: dict[str, Any]) -> str:
    window = alert.get("window") or {}
    who = f" for {alert['author']}" if alert.get("author") else ""
    return (
        f"LLM Twin drift{who}: {alert['signal']} = {alert['value']} {alert.get('drift_when', 'above')} "
        f"threshold {alert['threshold']} "
        f"({alert.get('method', '?')}), window {window.get('start')} .. {window.get('end')}; "
        f"report: {alert.get('report')}"
    )


def emit_drift_metric(signal: str) -> None:
    """Increment the StatsD counter the chart's PrometheusRule expects (no-op when StatsD is off)."""
    from airflow.sdk.observability.stats import Stats

    try:
        Stats.incr(DRIFT_METRIC, tags={"signal": signal})
    except Exception as exc:  # metrics must never fail an alert
        log.error("StatsD %s failed: %s", DRIFT_METRIC, exc)


class DriftAlertNotifier(BaseNotifier):
    """One alert for one drifted signal of one window: log, webhook, Slack, StatsD counter."""

    template_fields = ()

    def __init__(self, alert: dict[str, Any]) -> None:
        super().__init__()
        self.alert = alert

    def notify(self, context: dict[str, Any]) -> None:
        text = drift_message(self.alert)
        log.warning("DRIFT ALERT: %s", text)
        emit_drift_metric(str(self.alert.get("signal")))
        url = os.environ.get("TWIN_ALERT_WEBHOOK_URL")
        if url:
            dag_run = context.get("dag_run")
            post_webhook(
                url,
                {
                    "text": text,
                    "kind": "drift",
                    "alert": self.alert,
                    "dag_id": getattr(context.get("dag"), "dag_id", None),
                    "run_id": getattr(dag_run, "run_id", None) or context.get("run_id"),
                },
            )
        conn_id = os.environ.get("TWIN_ALERT_SLACK_CONN_ID")
        if conn_id:
            try:
                from airflow.providers.slack.notifications.slack_webhook import SlackWebhookNotifier

                SlackWebhookNotifier(slack_webhook_conn_id=conn_id, text=text).notify(context)
            except Exception as exc:  # a missing connection or Slack being down must not fail the run
                log.error("Slack alert through connection %s failed: %s", conn_id, exc)


def send_drift_alerts(result: dict[str, Any] | None, context: dict[str, Any]) -> list[dict[str, Any]]:
    """Alert on each new drifted signal of a `twin monitor drift --alert` result; the alerts sent.

    The result lists a signal under ``alerts`` only the first time it drifts in its window (the
    marker lives beside the report in the artifact store), so a re-run of a window sends nothing.
    """
    alerts = list((result or {}).get("alerts") or [])
    for alert in alerts:
        DriftAlertNotifier({**alert, "author": (result or {}).get("author")}).notify(context)
    return alerts


async def deadline_missed(context: dict[str, Any] | None = None, **kwargs: Any) -> None:
    """``DeadlineAlert`` callback (runs in the triggerer): a DAG run took longer than its deadline."""
    import asyncio

    dag_run = (context or {}).get("dag_run") or {}
    dag_id = dag_run.get("dag_id") if isinstance(dag_run, dict) else None
    run_id = dag_run.get("run_id") if isinstance(dag_run, dict) else None
    text = f"LLM Twin: DAG {dag_id} run {run_id} missed its deadline ({kwargs.get('interval', '?')})"
    log.error("ALERT: %s", text)
    url = os.environ.get("TWIN_ALERT_WEBHOOK_URL")
    if url:
        await asyncio.to_thread(post_webhook, url, {"text": text, "kind": "deadline", "dag_id": dag_id})
