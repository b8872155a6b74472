"""Where a drift check's Evidently reports live: ``monitoring/<author_slug|all>/<window key>/`` in the
artifact store (the informational comparison with the training data in its ``training/`` subfolder).

- ``<scope>.html`` / ``<scope>.json``: Evidently's report and its JSON snapshot, per scope or embedding signal;
- ``result.json``: the check's result (written last: its presence marks a complete check);
- ``alerts.json``: the signals already alerted for this window, so a re-run never alerts twice.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from twin_core.domain.ids import slugify
from twin_core.monitoring.windows import Window

PREFIX = "monitoring"
RESULT_FILE = "result.json"
ALERTS_FILE = "alerts.json"


def author_folder(author: str | None) -> str:
    return slugify(author) if author else "all"


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

    def write_result(self, result: dict[str, Any]) -> str:
        return self.artifacts.put_json(f"{self.folder}/{RESULT_FILE}", result)

    def new_alerts(self, drifted: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """The drifted signals not yet alerted for this window; records them as alerted."""
        key = f"{self.folder}/{ALERTS_FILE}"
        sent: dict[str, Any] = self.artifacts.get_json(key) if self.artifacts.exists(key) else {}
        fresh = [d for d in drifted if d["signal"] not in sent]
        if not fresh:
            return []
        now = datetime.now(UTC).isoformat()
        for d in fresh:
            sent[d["signal"]] = {"at": now, "score": d["score"], "threshold": d["threshold"]}
        self.artifacts.put_json(key, sent)
        return [
            {
                "signal": d["signal"],
                "threshold": d["threshold"],
                "value": d["score"],
                "method": d["method"],
                "drift_when": d.get("drift_when", "above"),
                "statistic": d["statistic"],
                "rows": d["rows"],
                "reference_rows": d["reference_rows"],
                "reference": d["reference"],
                "window": self.window.as_dict(),
                "report": self.location,
            }
            for d in fresh
        ]
