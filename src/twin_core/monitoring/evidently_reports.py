"""Where a drift check's Evidently reports live: ``monitoring/<author_slug|all>/<window key>/`` in the
artifact store (the informational comparison with the training data in its ``training/`` subfolder).

- ``<scope>.html`` / ``<scope>.json``: Evidently's report and its JSON snapshot, per scope or embedding signal
  (only with ``--plots``);
- ``report.html``: the check's own readable page (``html_report``), every check, whatever its verdict;
  written just before ``result.json``;
- ``result.json``: the check's result (written last: its presence marks a complete check; a check killed
  before it may leave a ``report.html`` and no result: the window counts as never checked);
- ``alerts.json``: the alerts delivered for this window (signal -> kind, when), written only after the
  delivery (`twin monitor record-alerts`, after the DAG's `check_drift`), so an alert a channel outage kept
  from anyone is still due on the next try; a re-run never sends one twice.

The per-author state across windows (open / resolved signals, reminders) is ``alert_state``'s.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from twin_core.domain.ids import slugify
from twin_core.errors import InputError
from twin_core.monitoring.html_report import render_report
from twin_core.monitoring.windows import Window

PREFIX = "monitoring"
RESULT_FILE = "result.json"
HTML_FILE = "report.html"
ALERTS_FILE = "alerts.json"


def author_folder(author: str | None) -> str:
    return slugify(author) if author else "all"


def read_json_object(artifacts: Any, key: str) -> dict[str, Any] | None:
    """The JSON object stored at ``key``, None when there is none. A file that is not one (hand-edited, cut
    short by another backend) is bad input naming it: read as empty it would page every open signal again
    or forget what was delivered."""
    if not artifacts.exists(key):
        return None
    try:
        data = artifacts.get_json(key)
    except ValueError as exc:  # JSONDecodeError, UnicodeDecodeError
        raise InputError(f"{artifacts.uri(key)} is not valid JSON ({exc}): fix or delete it") from None
    if not isinstance(data, dict):
        raise InputError(f"{artifacts.uri(key)}: expected a JSON object, not {type(data).__name__}: fix or delete it")
    return data


class ReportWriter:
    def __init__(self, artifacts: Any, author: str | None, window: Window, subfolder: str = "") -> None:
        self.artifacts = artifacts
        self.window = window
        self.folder = f"{PREFIX}/{author_folder(author)}/{window.key}" + (f"/{subfolder}" if subfolder else "")

    @property
    def location(self) -> str:
        return self.artifacts.uri(self.folder)

    def write_snapshot(self, name: str, snapshot: Any) -> str:
        self.artifacts.put_text(f"{self.folder}/{name}.json", snapshot.json())
        return self.artifacts.put_text(f"{self.folder}/{name}.html", snapshot.get_html_str(as_iframe=False))

    @property
    def html_location(self) -> str:
        """Where the check's ``report.html`` is (the result's ``html``, each alert's)."""
        return self.artifacts.uri(f"{self.folder}/{HTML_FILE}")

    def write_check(self, result: dict[str, Any]) -> str:
        """The check's ``report.html``, then its ``result.json``, last: a check killed between the two leaves
        a page and no result (never checked: a re-run rewrites both). Returns where result.json is."""
        at = self.artifacts.uri(f"{self.folder}/{RESULT_FILE}")
        self.artifacts.put_text(
            f"{self.folder}/{HTML_FILE}", render_report(result, result_name=RESULT_FILE, result_at=at)
        )
        return self.write_result(result)

    def write_result(self, result: dict[str, Any]) -> str:
        return self.artifacts.put_json(f"{self.folder}/{RESULT_FILE}", result)

    def result(self) -> dict[str, Any] | None:
        """The window's last complete check (its result.json), None when it was never checked."""
        return read_json_object(self.artifacts, f"{self.folder}/{RESULT_FILE}")

    def delivered(self) -> dict[str, Any]:
        """The alerts delivered for this window: signal -> {kind, at}."""
        return read_json_object(self.artifacts, f"{self.folder}/{ALERTS_FILE}") or {}

    def mark_delivered(self, delivered: list[tuple[str, str]]) -> str:
        """Record ``(kind, signal)`` alerts as delivered for this window (after the delivery, never before)."""
        sent = self.delivered()
        now = datetime.now(UTC).isoformat()
        for kind, signal in delivered:
            sent[signal] = {"kind": kind, "at": now}
        return self.artifacts.put_json(f"{self.folder}/{ALERTS_FILE}", sent)

    def new_alerts(self, drifted: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """The alerts of the drifted signals not yet delivered for this window. Nothing is recorded here:
        candidates become delivered only through ``mark_delivered``, once a channel took them."""
        sent = self.delivered()
        fresh = [d for d in drifted if d["signal"] not in sent]
        # each alert is its signal's drifted entry (statistic, sample sizes, p-value or interval, rates),
        # with the score named ``value``, and the window and report it came from
        return [
            {
                **{k: v for k, v in d.items() if k != "score"},
                "value": d["score"],
                "drift_when": d.get("drift_when", "above"),
                "window": self.window.as_dict(),
                "report": self.location,
                "html": self.html_location,
            }
            for d in fresh
        ]
