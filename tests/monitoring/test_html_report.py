"""Every drift check writes a readable, self-contained ``report.html`` beside its ``result.json`` (the
hourly DAG runs without ``--plots``: before, the folder an alert pointed at held only JSON). The page
states the window and the reference with their counts, the verdict and its reason, one row per signal
(status and why, sample sizes, p-value with its permutations or interval with its confidence, drifted),
the alerts due and the files beside it; every value is escaped; it is written before ``result.json``,
which stays the last write (what marks a check complete).

The text tools are stand-ins (no model); the traffic is tests/support/synthetic_traffic's."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from html import escape
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest
from support.synthetic_traffic import T0, log_hours, request_logs

from twin_core.monitoring.html_report import render_report

Mutate = Callable[[list[Any]], None]


class _Page(HTMLParser):
    """The page's tables (rows of cell texts), its links, and whether it has a script or an external asset."""

    def __init__(self, html: str) -> None:
        super().__init__(convert_charrefs=True)
        self.tables: list[list[list[str]]] = []
        self.links: list[str] = []
        self.tags: set[str] = set()
        self.sources: list[str] = []
        self._cell: list[str] | None = None
        self.feed(html)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.add(tag)
        self.sources += [v or "" for k, v in attrs if k in ("src", "srcset")]
        if tag == "a":
            self.links.append(dict(attrs)["href"] or "")
        elif tag == "table":
            self.tables.append([])
        elif tag == "tr":
            self.tables[-1].append([])
        elif tag in ("td", "th"):
            self._cell = []
        elif tag == "br" and self._cell is not None:
            self._cell.append(" | ")

    def handle_endtag(self, tag: str) -> None:
        if tag in ("td", "th") and self._cell is not None:
            self.tables[-1][-1].append("".join(self._cell).strip())
            self._cell = None

    def handle_data(self, data: str) -> None:
        if self._cell is not None:
            self._cell.append(data)

    def signals(self) -> dict[str, dict[str, str]]:
        """The signal table as signal -> column -> cell."""
        head, *rows = self.tables[0]
        return {row[0]: dict(zip(head, row, strict=True)) for row in rows}


@pytest.fixture
def hours(settings: Any, warehouse: Any) -> Any:
    """``hours(*mutations)``: hour i from T0 holds 40 requests changed by mutation i (None: as logged);
    returns ``check(hour, **kwargs)``: the drift check of that hour (``artifacts=`` another store)."""
    import numpy as np

    from twin_core.monitoring import TextTools, parse_window, run_drift_check
    from twin_core.stores.artifacts import open_artifact_store

    tools = TextTools(embed=lambda texts: np.ones((len(texts), 8)), language=lambda _: "en", vocabulary=frozenset())

    def seed(*mutations: Mutate | None) -> Callable[..., dict[str, Any]]:
        log_hours(warehouse, *mutations)
        return lambda hour, artifacts=None, **kwargs: run_drift_check(
            settings,
            parse_window("1h", T0 + timedelta(hours=hour + 1)),
            tools=tools,
            warehouse=warehouse,
            artifacts=artifacts or open_artifact_store(settings),
            **kwargs,
        )

    return seed


def _status(status: str, count: int) -> Mutate:
    def mutate(rows: list[Any]) -> None:
        for row in rows[:count]:
            row.status, row.answer, row.error = status, None, f"{status}: test"

    return mutate


def _no_retrieval_and_rejected(rows: list[Any]) -> None:
    _status("rejected", 25)(rows)
    for row in rows:
        row.retrieved = []


def _outage(rows: list[Any]) -> None:
    _status("error", 12)(rows)


def _page(result: dict[str, Any]) -> tuple[str, _Page]:
    html = Path(result["html"]).read_text(encoding="utf-8")
    return html, _Page(html)


def _self_contained(html: str, page: _Page) -> None:
    assert "script" not in page.tags and not page.sources and "<link" not in html
    assert all(not link.startswith(("http:", "https:", "//", "/")) for link in page.links), page.links


def test_a_drifted_window_has_its_page_with_each_signal_its_counts_and_uncertainty(hours: Any) -> None:
    """12 of 40 requests failed (none the hour before): the error rate drifts, with its interval; the
    latency (a distance) states its permutation p-value; the alert due is listed, and carries the page."""
    from twin_core.monitoring.rates import newcombe

    result = hours(None, _outage)(1, alert=True)
    folder = Path(result["report"])
    assert result["verdict"] == "drift" and result["html"] == str(folder / "report.html")
    assert (folder / "result.json").is_file()
    html, page = _page(result)
    _self_contained(html, page)
    assert "Drift check 20261122T110000Z-1h for every author" in html
    assert "2026-11-22T11:00:00+00:00 .. 2026-11-22T12:00:00+00:00 (1h): <b>40 requests</b>" in html
    assert "previous traffic, 2026-11-22T10:00:00+00:00 .. 2026-11-22T11:00:00+00:00 (1h): 40 requests" in html
    assert "Verdict: <b>drift</b> &mdash; drifted: error_rate" in html
    signals = page.signals()
    assert set(signals) == set(result["signals"])
    _, low, high = newcombe(12, 40, 0, 40, 0.95)
    assert signals["error_rate"] | {"statistic": ""} == {
        "signal": "error_rate", "scope": "operations", "status": "scored", "statistic": "",
        "value": f"{round(low, 6):.4g}", "threshold": "0.02 (drifts above)", "n (window)": "40",
        "n (reference)": "40", "p-value / interval": f"[{round(low, 6):.4g}, {round(high, 6):.4g}] at 0.95 confidence",
        "drifted": "yes",
    }  # fmt: skip
    assert "12 of 40 failed (0.3) vs 0 of 40 (0)" in signals["error_rate"]["statistic"]
    latency = result["signals"]["latency_ms"]
    assert (signals["latency_ms"]["n (window)"], signals["latency_ms"]["n (reference)"]) == ("40", "40")
    assert signals["latency_ms"]["p-value / interval"] == f"p = {latency['p_value']:.4g} (999 permutations)"
    assert signals["latency_ms"]["drifted"] == ("yes" if latency["drifted"] else "no")
    assert latency["detail"] in signals["latency_ms"]["statistic"]
    (alert,) = result["alerts"]
    assert alert["html"] == result["html"] and alert["report"] == result["report"]
    assert page.tables[1][1][:2] == ["drift", "error_rate"]
    assert page.links == ["result.json"]  # no --plots: no Evidently report to link
    assert f"the full result, at {folder / 'result.json'}" in html


def test_a_window_with_too_few_requests_has_its_page_too(hours: Any) -> None:
    """not_enough_data returns before any signal: the page says why, and that the reference was not read."""
    result = hours(None, lambda rows: rows.__delitem__(slice(5, None)))(1, alert=True)
    assert result["verdict"] == "not_enough_data" and result["signals"] == {}
    html, page = _page(result)
    _self_contained(html, page)
    assert "<b>5 requests</b>" in html and "Verdict: <b>not_enough_data</b>" in html
    assert "<p>5 requests in the window (&lt; 20): no drift check</p>" in html
    assert "(1h): not read (too few requests in the window)" in html
    assert "No signal was scored" in html and page.tables == []
    assert Path(result["report"], "result.json").is_file()


def test_a_partial_window_shows_the_held_signal_and_why(hours: Any) -> None:
    """25 of 40 requests rejected by the client, none retrieving: the coverage is held (15 answered)."""
    result = hours(None, _no_retrieval_and_rejected)(1)
    assert result["verdict"] == "partial"
    html, page = _page(result)
    coverage = page.signals()["retrieval_coverage"]
    reason = "15 requests the server answered in the window (of 40 requests; < 20): not enough data"
    assert coverage["status"] == f"held: {reason}"
    assert (coverage["n (window)"], coverage["n (reference)"], coverage["drifted"]) == ("15", "40", "not decided")
    assert (coverage["value"], coverage["p-value / interval"]) == ("–", "–")
    assert "held, not checked: " in html and escape(f"retrieval_coverage: {reason}") in html


def test_an_informational_check_has_its_page_in_the_training_folder(hours: Any) -> None:
    result = hours(None, None)(1, reference="training")
    assert result["verdict"] == "informational"
    folder = Path(result["report"])
    assert folder.name == "training" and result["html"] == str(folder / "report.html")
    html, page = _page(result)
    assert "the training data (instruct dataset versions: none): informational, never alerts" in html
    assert "nothing compared: " in html and "Verdict: <b>informational</b>" in html
    assert {row["status"].split(":")[0] for row in page.signals().values()} == {"held"}


def test_a_stationary_window_has_its_page_with_every_signal_scored(hours: Any) -> None:
    result = hours(None, None)(1)
    assert result["verdict"] == "no_drift"
    _, page = _page(result)
    assert {row["status"] for row in page.signals().values()} == {"scored"}
    assert {row["drifted"] for row in page.signals().values()} == {"no"}


class _Recording:
    """The artifact store, recording each write; ``fail_on`` (a file name) raises as a kill would stop it."""

    def __init__(self, store: Any, fail_on: str | None = None) -> None:
        self.store, self.fail_on, self.writes = store, fail_on, []

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self.store, name)
        if not name.startswith("put_"):
            return attr

        def put(key: str, *args: Any, **kwargs: Any) -> Any:
            if self.fail_on and key.endswith("/" + self.fail_on):
                raise OSError(f"killed before {key}")
            self.writes.append(key.rsplit("/", 1)[-1])
            return attr(key, *args, **kwargs)

        return put


@pytest.mark.parametrize("keep", [5, 40], ids=["not_enough_data", "drift"])
def test_the_page_is_written_before_the_result_which_stays_last(
    hours: Any, settings: Any, twin_home: Path, keep: int
) -> None:
    from twin_core.monitoring import parse_window
    from twin_core.monitoring.evidently_reports import ReportWriter
    from twin_core.stores.artifacts import open_artifact_store

    store = open_artifact_store(settings)
    check = hours(None, lambda rows: (_outage(rows), rows.__delitem__(slice(keep, None))))
    recording = _Recording(store)
    check(1, artifacts=recording, alert=True)
    assert recording.writes[-2:] == ["report.html", "result.json"]
    folder = Path(twin_home, "artifacts", "monitoring", "all", "20261122T110000Z-1h")
    (folder / "result.json").unlink()
    (folder / "report.html").unlink()
    killed = _Recording(store, fail_on="result.json")
    with pytest.raises(OSError, match="killed before"):
        check(1, artifacts=killed, alert=True)
    assert killed.writes[-1] == "report.html" and (folder / "report.html").is_file()
    assert not (folder / "result.json").exists()  # the window was never checked: a re-run checks it
    assert ReportWriter(store, None, parse_window("1h", T0 + timedelta(hours=2))).result() is None


def test_every_value_is_escaped_and_evidently_reports_are_linked_by_name() -> None:
    """A logged query, an author name or a reason can hold markup: the page shows it as text."""
    bad = '<script>alert("x")</script>'
    entry = {
        "scope": "queries", "status": "held", "skipped": f"no rows like {bad}", "method": "wasserstein",
        "statistic": bad, "detail": bad, "score": None, "threshold": 0.1, "rows": 3, "reference_rows": 7,
        "p_value": None, "interval": None, "drifted": None,
    }  # fmt: skip
    result = {
        "window": {"key": f"k{bad}", "start": "s", "end": "e", "length": "1h"},
        "author": bad, "rows": 3, "reference": {"kind": bad, "window": None, "requests": 7},
        "verdict": "partial", "reason": bad, "signals": {f"query_{bad}": entry}, "drifted": [],
        "alerts": [{"kind": "drift", "signal": bad, "value": 1.0, "threshold": 0.5, "p_value": 0.001,
                    "permutations": 999}],
        "reports": {"queries": "/x/queries.html", "query_embedding": "/x/query_embedding.html"},
    }  # fmt: skip
    html = render_report(result, result_name="result.json", result_at=f"/x/{bad}/result.json")
    page = _Page(html)
    _self_contained(html, page)
    assert "<script" not in html and html.count("&lt;script&gt;") == 11
    assert page.signals()[f"query_{bad}"]["status"] == f"held: no rows like {bad}"
    assert page.signals()[f"query_{bad}"]["n (window)"] == "3"
    assert page.tables[1][1] == ["drift", bad, "1", "0.5", "p = 0.001 (999 permutations)"]
    assert page.links == ["queries.html", "query_embedding.html", "result.json"]


def test_an_unreadable_stored_row_is_named_by_its_id(warehouse: Any) -> None:
    """The warehouse's row parser names the stored row's _id; the check's error says it, not only the row
    before it."""
    from twin_core.domain.inference import UnreadableLogRow
    from twin_core.errors import InputError
    from twin_core.monitoring.scopes import read_logs
    from twin_core.monitoring.windows import parse_window

    class _Stored:  # a row as another writer stored it: `query` is not text
        def to_mongo(self) -> dict[str, Any]:
            return {"_id": "bad-7", "time": T0 + timedelta(minutes=30), "status": "ok", "query": 42}

    for row in request_logs(T0, T0 + timedelta(hours=1), 2):
        warehouse.append_inference_log(row)
    warehouse.append_inference_log(_Stored())
    with pytest.raises(UnreadableLogRow, match=r"row 'bad-7' is not readable: query: Input should be") as caught:
        list(warehouse.inference_logs())
    assert caught.value.row_id == "bad-7" and isinstance(caught.value, ValueError)
    with pytest.raises(InputError, match=r"unreadable row 'bad-7' in .*\(row 2 in time order, after the row '"):
        read_logs(warehouse, parse_window("1h", T0 + timedelta(hours=1)), None)
