"""On-call alerts. Log-only by default; TWIN_ALERT_WEBHOOK_URL posts JSON to a webhook
(Slack-compatible ``text`` field), so any chat or paging tool with an incoming webhook works."""

from __future__ import annotations

import json
import logging
import os
import urllib.request
from typing import Any

from airflow.sdk import BaseNotifier

log = logging.getLogger("twin.alerts")


class TwinAlertNotifier(BaseNotifier):
    template_fields = ("message",)

    def __init__(self, message: str = "{{ dag.dag_id }}.{{ ti.task_id }} failed (run {{ run_id }})") -> None:
        super().__init__()
        self.message = message

    def notify(self, context: dict[str, Any]) -> None:
        log.error("ALERT: %s", self.message)
        url = os.environ.get("TWIN_ALERT_WEBHOOK_URL")
        if not url:
            return
        body = json.dumps({"text": self.message}).encode()
        req = urllib.request.Request(url, data=body, headers={"Content-Type": "application/json"})
        try:
            urllib.request.urlopen(req, timeout=10).close()
        except OSError as exc:  # an alert channel being down must not fail the callback chain
            log.error("alert webhook %s failed: %s", url, exc)
