"""`twin monitor drift` as a step: empty and tiny windows, bad input, the reference fallback."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest


def test_empty_window_is_not_enough_data(twin_home: Path, twin) -> None:
    run = twin("monitor", "drift", "--window", "1h", "--end", "2026-11-22T10:00:00Z", "--alert")
    assert run.returncode == 0, run.stderr
    r = run.result
    assert r["status"] == "ok" and r["verdict"] == "not_enough_data"
    assert r["rows"] == 0 and r["drifted"] == [] and r["alerts"] == []
    assert "0 requests in the window" in r["reason"]
    assert Path(r["report"], "result.json").is_file()
    # the check's own page, named in the JSON line; no Evidently report without --plots
    assert r["html"] == str(Path(r["report"], "report.html"))
    assert [p.name for p in Path(r["report"]).glob("*.html")] == ["report.html"]
    assert "Verdict: <b>not_enough_data</b>" in Path(r["html"]).read_text()


def test_tiny_window_is_not_enough_data_never_an_alert(settings, twin) -> None:
    from support import synthetic_traffic as synthetic

    from twin_core.stores.warehouse import open_warehouse

    start = datetime(2026, 11, 22, 9, tzinfo=UTC)
    wh = open_warehouse(settings)
    for row in synthetic.request_logs(start, start + timedelta(hours=1), 5, style="shifted"):
        wh.append_inference_log(row)
    run = twin("monitor", "drift", "--end", "2026-11-22T10:00:00+00:00", "--alert")
    assert run.returncode == 0, run.stderr
    assert run.result["verdict"] == "not_enough_data" and run.result["rows"] == 5
    assert run.result["alerts"] == []


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--window", "5x"], "expected a number and a unit"),
        (["--window", "30s"], "at least 1m"),
        (["--end", "yesterday"], "not an ISO 8601 time"),
        (["--reference", "tomorrow"], "expected one of previous, baseline, training"),
    ],
)
def test_bad_input_exits_3_and_writes_nothing(twin_home: Path, twin, args: list[str], message: str) -> None:
    run = twin("monitor", "drift", *args)
    assert run.returncode == 3
    assert run.result["status"] == "error" and message in run.result["error"]
    assert not (twin_home / "artifacts" / "monitoring").exists()


def test_bad_signal_config_is_a_config_error(twin_home: Path, tmp_path: Path, twin) -> None:
    bad = tmp_path / "monitoring.yaml"
    bad.write_text("signals:\n  query_length: {scope: queries, column: query}\n")
    run = twin("monitor", "drift", "--end", "2026-11-22T10:00:00Z", env={"TWIN_MONITOR_CONFIG": str(bad)})
    assert run.returncode == 2
    assert "query_length" in run.result["error"]


def test_windows_and_oov() -> None:
    from twin_core.monitoring.text_tools import oov_share
    from twin_core.monitoring.windows import parse_window

    w = parse_window("90m", "2026-11-22T12:00:00+01:00")
    assert w.start == datetime(2026, 11, 22, 9, 30, tzinfo=UTC) and w.key == "20261122T093000Z-90m"
    assert parse_window("60m", "2026-11-22T12:00Z").label == "1h"
    assert w.previous(2).as_dict()["start"] == "2026-11-22T06:30:00+00:00"
    assert oov_share("Kafka lag, zzqx!", frozenset({"kafka", "lag"})) == pytest.approx(1 / 3)
    assert oov_share("", frozenset()) == 0.0


def test_demo_closing_check_raises_no_alert_on_its_own_few_requests(settings) -> None:
    """The demo's handful of requests (6 here, about what a demo run logs) is held below the minimum of
    20 requests: not enough data, no drift, no alert (it once drifted on 6 of 7 signals)."""
    from support import synthetic_traffic as synthetic

    from twin_core.demo.monitoring import stage
    from twin_core.stores.warehouse import open_warehouse

    now = datetime.now(UTC)
    wh = open_warehouse(settings)
    for row in synthetic.request_logs(now - timedelta(minutes=10), now - timedelta(minutes=5), 6, style="shifted"):
        wh.append_inference_log(row)
    summary = stage(Path("."))
    assert summary["requests"] == 6
    assert summary["verdict"] == "not_enough_data" and summary["alerts"] == []
    assert summary["window"]["length"] == "1d"
    assert summary["reason"] == "6 requests in the window (< 20): no drift check"


def test_a_bad_time_names_the_option_it_came_from() -> None:
    from twin_core.errors import InputError
    from twin_core.monitoring.windows import parse_time, parse_window

    example = "not an ISO 8601 time (like 2026-11-22T17:00:00Z)"
    for call, where in (
        (lambda: parse_window("1h", "garbage"), "--end "),
        (lambda: parse_time("garbage", option="--baseline-end"), "--baseline-end "),
        (lambda: parse_time("garbage"), ""),  # no option given: none named, rather than a wrong one
    ):
        with pytest.raises(InputError) as raised:
            call()
        assert str(raised.value) == f"{where}'garbage': {example}"
