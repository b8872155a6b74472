"""twin_monitoring: hourly over its own data interval, renders in both modes; drift alerts reach a
webhook once per signal and window, are recorded as sent only once delivered (a webhook outage fails
check_drift and loses nothing), page once for an ongoing drift and once more when it resolves, emit the
drift Asset that queues twin_datasets; a backfill of three past hours gives three reports; every DAG has
a deadline alert; a malformed webhook URL fails that channel, never the alert loop or the failure alert;
the StatsD drift counter is the metric the chart's PrometheusRule alerts on, there from the first check."""

from __future__ import annotations

import asyncio
import configparser
import json
import os
import re
import socket
import subprocess
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from support.webhook import WebhookSink as Sink

REPO_ROOT = Path(__file__).resolve().parents[2]
TWIN = REPO_ROOT / ".venv" / "bin" / "twin"
TWIN_PY = REPO_ROOT / ".venv" / "bin" / "python"
needs_twin = pytest.mark.skipif(not TWIN.exists(), reason="the twin_core environment (.venv) is not built")


DAG_ID = "twin_monitoring"  # the `dag` fixture (conftest.py) parses it in local mode


@pytest.fixture
def sink() -> Iterator[Sink]:
    s = Sink()
    yield s
    s.close()


def _seed(home: Path, start: datetime, hours: int, style: str) -> None:
    env = {**os.environ, "TWIN_HOME": str(home), "TWIN_PROGRESS": "0"}
    cmd = [str(TWIN_PY), str(REPO_ROOT / "tests" / "support" / "synthetic_traffic.py"), "--start", start.isoformat()]
    cmd += ["--hours", str(hours), "--per-hour", "40", "--style", style]
    subprocess.run(cmd, check=True, env=env, capture_output=True)


def _use_home(monkeypatch: pytest.MonkeyPatch, home: Path) -> None:
    monkeypatch.setenv("TWIN_HOME", str(home))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("TWIN_EXECUTION", "local")
    # one-process runs (dag.test, tasks test) without the DeadlineAlert: Airflow 3.3.2 (twin_ops.defaults)
    monkeypatch.setenv("TWIN_DAG_DEADLINES", "0")


def _parsed_dag(dag_id: str) -> Any:
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(str(REPO_ROOT / "dags"))
    assert bag.import_errors == {}
    return bag.dags[dag_id]


# -- shape ------------------------------------------------------------------------------------------
def test_hourly_schedule_graph_and_outlet(dag) -> None:
    assert type(dag.timetable).__name__ == "CronDataIntervalTimetable"
    assert dag.timetable.expression == "0 * * * *"
    assert {t.task_id: sorted(t.downstream_task_ids) for t in dag.tasks} == {
        "drift_report": ["check_drift"],
        "check_drift": ["check_new_drift", "record_alerts"],  # deliver, then record what was delivered
        "record_alerts": ["check_new_drift"],
        "check_new_drift": [],
    }
    assert [a.uri for a in dag.get_task("check_new_drift").outlets] == ["twin://monitoring/drift"]
    assert dag.get_task("check_drift").outlets == [] and dag.get_task("check_drift").retries == 2
    args = dag.get_task("drift_report").arguments
    assert args[:4] == ["monitor", "drift", "--window", "1h"] and args[-1] == "--alert"
    assert "data_interval_end" in args[args.index("--end") + 1]
    record = dag.get_task("record_alerts").arguments
    assert record[:2] == ["monitor", "record-alerts"] and record[2:6] == args[2:6]  # the same window


def test_record_alerts_gets_what_check_drift_delivered(dag) -> None:
    from types import SimpleNamespace

    task = dag.get_task("record_alerts")
    delivered = {"delivered": ["drift:query_length", "resolved:latency_ms"]}
    ti = SimpleNamespace(xcom_pull=lambda task_ids: delivered if task_ids == "check_drift" else None)
    end = datetime(2026, 11, 21, 12, tzinfo=UTC)
    context = {"params": {"author": ""}, "data_interval_end": end, "dag_run": None, "ti": ti}
    assert task.render_template(task.arguments, context, dag.get_template_env()) == [
        "monitor", "record-alerts", "--window", "1h", "--end", "2026-11-21T12:00:00+00:00", "--author", "",
        "--delivered", "drift:query_length,resolved:latency_ms",
    ]  # fmt: skip


def _rendered_command(dag: Any, **conf: Any) -> list[str]:
    """drift_report's `twin` arguments for a run with this trigger-form ``conf`` (validated like a trigger)."""
    import copy

    params = copy.deepcopy(dag.params)
    for key, value in conf.items():
        params[key] = value  # validates the value against the Param's schema
    task = dag.get_task("drift_report")
    end = datetime(2026, 11, 21, 11, tzinfo=UTC)
    context = {"params": params.validate(), "data_interval_end": end, "dag_run": None}
    return task.render_template(task.arguments, context, dag.get_template_env())


def test_reference_baseline_passes_the_baseline_end(dag) -> None:
    base = ["monitor", "drift", "--window", "1h", "--end", "2026-11-21T11:00:00+00:00"]
    # "" = not given, for `twin monitor drift` (as for --author)
    default = [*base, "--reference", "previous", "--baseline-end", "", "--author", "", "--alert"]
    assert _rendered_command(dag) == default
    baseline = _rendered_command(dag, reference="baseline", baseline_end="2026-11-01T00:00:00+00:00")
    assert baseline == [*base, "--reference", "baseline", "--baseline-end", "2026-11-01T00:00:00+00:00"] + default[-3:]
    assert dag.params["baseline_end"] is None
    assert dag.params.get_param("reference").schema["enum"] == ["previous", "baseline", "training"]


def test_baseline_end_must_be_a_date_time(dag) -> None:
    from airflow.sdk.exceptions import ParamValidationError

    param = dag.params.get_param("baseline_end")
    assert param.schema["format"] == "date-time"  # the trigger form's date-time picker
    for good in (None, "", "2026-11-01T00:00:00+00:00", "2026-11-01T00:00:00.000Z", "2026-11-01 00:00"):
        assert param.resolve(good) == good
    for bad in ("last week", "01/11/2026", "2026-11-01"):
        with pytest.raises(ParamValidationError):
            param.resolve(bad)


@pytest.mark.parametrize("mode", ["local", "kubernetes"])
def test_renders_in_both_modes(monkeypatch: pytest.MonkeyPatch, mode: str) -> None:
    from airflow.dag_processing.dagbag import DagBag

    monkeypatch.setenv("TWIN_EXECUTION", mode)
    bag = DagBag(str(REPO_ROOT / "dags"))
    assert bag.import_errors == {}
    task = bag.dags["twin_monitoring"].get_task("drift_report")
    expected = "TwinPodOperator" if mode == "kubernetes" else "TwinLocalOperator"
    assert type(task).__name__ == expected
    # the --end template renders to the run's data interval end
    end = task.arguments[task.arguments.index("--end") + 1]
    env = bag.dags["twin_monitoring"].get_template_env()
    rendered = env.from_string(end).render(data_interval_end=datetime(2026, 11, 21, 11, tzinfo=UTC), dag_run=None)
    assert rendered == "2026-11-21T11:00:00+00:00"
    if mode == "kubernetes":
        pod = task.build_pod_request_obj(dry_run=True)
        assert pod.spec.containers[0].command == ["twin"]
        assert pod.spec.containers[0].args[:2] == ["monitor", "drift"]


def test_every_dag_has_a_deadline_alert(local_dagbag) -> None:
    from airflow.sdk.definitions.deadline import DagRunQueuedAtDeadline, DeadlineAlert

    assert local_dagbag.dags
    for dag_id, dag in local_dagbag.dags.items():
        alerts = dag.deadline if isinstance(dag.deadline, list) else [dag.deadline]
        assert alerts and all(isinstance(a, DeadlineAlert) for a in alerts), dag_id
        alert = alerts[0]
        assert isinstance(alert.reference, DagRunQueuedAtDeadline), dag_id
        assert alert.callback.path == "twin_ops.notifiers.deadline_missed", dag_id
        assert alert.interval > timedelta(0), dag_id
    assert local_dagbag.dags["twin_monitoring"].deadline[0].interval == timedelta(minutes=50)


def test_deadline_callback_alerts_the_webhook(sink: Sink, monkeypatch: pytest.MonkeyPatch) -> None:
    from twin_ops.notifiers import deadline_missed

    monkeypatch.setenv("TWIN_ALERT_WEBHOOK_URL", sink.url)
    context = {"dag_run": {"dag_id": "twin_training", "run_id": "scheduled__x"}, "deadline": {}}
    asyncio.run(deadline_missed(context=context, interval="1 day, 0:00:00"))
    assert sink.bodies == [
        {
            "text": "LLM Twin: DAG twin_training run scheduled__x missed its deadline (1 day, 0:00:00)",
            "kind": "deadline",
            "dag_id": "twin_training",
            "dedup_key": "llm-twin:deadline:twin_training:scheduled__x",
        }
    ]
    assert sink.keys == ["llm-twin:deadline:twin_training:scheduled__x"]  # the Idempotency-Key header too


def test_failure_alert_names_the_mapped_instance_and_the_reason(sink: Sink, monkeypatch: pytest.MonkeyPatch) -> None:
    """TwinAlertNotifier (every task's on_failure_callback) reads the callback context Airflow 3.3 gives:
    ``ti.map_index`` (-1 when not mapped) and ``exception``; one instance serves several failures."""
    from types import SimpleNamespace

    from airflow.sdk import DAG
    from twin_ops.local_operator import TwinStepRejected
    from twin_ops.notifiers import TwinAlertNotifier

    monkeypatch.setenv("TWIN_ALERT_WEBHOOK_URL", sink.url)
    dag = DAG("twin_etl", schedule=None)
    notifier = TwinAlertNotifier()  # shared, as in default_args
    reason = "`twin etl crawl --link file:///x` failed (bad input, exit code 3, not retried): file:///x: git: gone"

    def context(task_id: str, map_index: int, exception: BaseException | None, try_number: int = 1) -> dict[str, Any]:
        ti = SimpleNamespace(task_id=task_id, map_index=map_index, try_number=try_number)
        return {"dag": dag, "ti": ti, "run_id": "manual__1", "exception": exception}

    notifier(context("crawl", 2, TwinStepRejected(reason)))
    notifier(context("crawl", 0, TwinStepRejected(reason)))
    notifier(context("validate_raw", -1, None))
    notifier(context("check_drift", -1, RuntimeError("x" * 3000), try_number=3))
    texts = [b["text"] for b in sink.bodies]
    assert texts[:3] == [
        f"twin_etl.crawl[2] failed (run manual__1): {reason}",
        f"twin_etl.crawl[0] failed (run manual__1): {reason}",
        "twin_etl.validate_raw failed (run manual__1)",
    ]
    assert texts[3] == "twin_etl.check_drift failed (run manual__1): " + "x" * 997 + "..."  # at most 1000
    assert len(texts) == 4
    assert [b["dedup_key"] for b in sink.bodies] == [  # one per failed task instance and try
        "llm-twin:failure:twin_etl:manual__1:crawl:2:1",
        "llm-twin:failure:twin_etl:manual__1:crawl:0:1",
        "llm-twin:failure:twin_etl:manual__1:validate_raw:-:1",
        "llm-twin:failure:twin_etl:manual__1:check_drift:-:3",
    ]


# -- delivery: recorded as sent only once a channel took it; a bad channel fails itself, not the loop ----
WINDOW_11 = {
    "start": "2026-11-21T11:00:00+00:00",
    "end": "2026-11-21T12:00:00+00:00",
    "length": "1h",
    "key": "20261121T110000Z-1h",
}


def _checked(*alerts: tuple[str, str], author: str | None = None) -> dict[str, Any]:
    """A `twin monitor drift --alert` result of the 11:00 window listing these (kind, signal) alerts due."""
    due = [
        {"signal": signal, "kind": kind, "value": 3.0, "threshold": 1.0, "method": "wasserstein",
         "drift_when": "above", "window": WINDOW_11, "report": "/a/monitoring/all/20261121T110000Z-1h",
         **({"since": "2026-11-21T09:00:00+00:00"} if kind != "drift" else {})}
        for kind, signal in alerts
    ]  # fmt: skip
    scopes = {"query_length": "queries", "latency_ms": "operations", "retrieval_score": "operations"}
    signals = {
        name: {"status": "scored", "score": 0.1, "scope": scopes[name]} for name in ("query_length", "latency_ms")
    }
    return {"window": WINDOW_11, "author": author, "verdict": "drift", "report": due[0]["report"] if due else "/a",
            "signals": signals, "alerts": due}  # fmt: skip


def test_a_webhook_url_without_a_scheme_fails_that_channel_not_the_alerts(
    dag, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """`hooks.slack.com/…` (no https://): the failure alert is logged, not raised (it raised ValueError and
    was lost); every drift alert is tried, then check_drift fails naming the variable (retried)."""
    from types import SimpleNamespace

    from airflow.sdk import DAG
    from twin_ops.notifiers import TwinAlertNotifier, post_webhook

    monkeypatch.setenv("TWIN_ALERT_WEBHOOK_URL", "hooks.slack.com/services/T0/B0/XYZ")
    monkeypatch.delenv("TWIN_ALERT_SLACK_CONN_ID", raising=False)
    failure = {"dag": DAG("twin_etl", schedule=None), "ti": SimpleNamespace(task_id="crawl", map_index=-1),
               "run_id": "manual__1", "exception": None}  # fmt: skip
    caplog.set_level("INFO", logger="twin.alerts")
    TwinAlertNotifier()(failure)
    assert post_webhook("hooks.slack.com/services/T0/B0/XYZ", {"text": "x"}) is False
    check = dag.get_task("check_drift").python_callable
    with pytest.raises(RuntimeError) as raised:
        check(_checked(("drift", "query_length"), ("drift", "answer_length")))
    assert type(raised.value).__name__ == "AlertNotDelivered"  # retryable: not an AirflowFailException
    assert "2 of 2 drift alerts reached no alert channel (drift:query_length, drift:answer_length)" in str(raised.value)
    refused = [r.getMessage() for r in caplog.records if r.getMessage().startswith("TWIN_ALERT_WEBHOOK_URL")]
    assert refused == ["TWIN_ALERT_WEBHOOK_URL 'hooks.slack.com/…' is not an http(s) URL with a host "
                       "(e.g. https://hooks.slack.com/services/…): alert not sent there"] * 3  # fmt: skip
    assert not any("XYZ" in r.getMessage() for r in caplog.records)  # the URL's secret path is never logged


def test_a_webhook_outage_fails_check_drift_after_trying_every_alert(
    dag, sink: Sink, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Nothing is returned for record_alerts (nothing is marked as sent) until the webhook took them."""
    from airflow.sdk.exceptions import AirflowSkipException

    monkeypatch.setenv("TWIN_ALERT_WEBHOOK_URL", sink.url)
    monkeypatch.delenv("TWIN_ALERT_SLACK_CONN_ID", raising=False)
    check = dag.get_task("check_drift").python_callable
    result = _checked(("drift", "query_length"), ("reminder", "retrieval_score"), ("resolved", "latency_ms"))
    sink.status = 503
    with pytest.raises(RuntimeError, match=r"3 of 3 drift alerts reached no alert channel"):
        check(result)
    assert [b["alert"]["signal"] for b in sink.refused] == ["query_length", "retrieval_score", "latency_ms"]
    sink.status = 200
    assert check(result) == {
        "window": WINDOW_11,
        "delivered": ["drift:query_length", "reminder:retrieval_score", "resolved:latency_ms"],
        "retrain": ["query_length"],
        "report": "/a/monitoring/all/20261121T110000Z-1h",
    }
    assert [b["kind"] for b in sink.bodies] == ["drift", "drift_reminder", "drift_resolved"]
    # the retry sent each alert again with the key of its first try: one incident for a de-duplicating pager
    assert (
        [b["dedup_key"] for b in sink.bodies]
        == [b["dedup_key"] for b in sink.refused]
        == [
            "llm-twin:drift:all:query_length:drift:20261121T110000Z-1h",
            "llm-twin:drift:all:retrieval_score:reminder:20261121T110000Z-1h",
            "llm-twin:drift:all:latency_ms:resolved:20261121T110000Z-1h",
        ]
    )
    assert sink.keys == [b["dedup_key"] for b in sink.refused + sink.bodies]
    texts = [b["text"] for b in sink.bodies]
    assert texts[1].startswith("LLM Twin drift still on: retrieval_score = 3.0 above threshold 1.0 (wasserstein)")
    assert "drifting since 2026-11-21T09:00:00+00:00" in texts[1]
    assert texts[2].startswith("LLM Twin drift resolved: latency_ms = 3.0 within threshold 1.0 (wasserstein)")
    with pytest.raises(AirflowSkipException, match="no alert due"):
        check(_checked())


def test_with_no_channel_configured_the_log_is_the_alert(dag, monkeypatch: pytest.MonkeyPatch, caplog) -> None:
    """The local default (no webhook, no Slack): logged, and recorded as delivered."""
    monkeypatch.delenv("TWIN_ALERT_WEBHOOK_URL", raising=False)
    monkeypatch.delenv("TWIN_ALERT_SLACK_CONN_ID", raising=False)
    caplog.set_level("INFO", logger="twin.alerts")
    sent = dag.get_task("check_drift").python_callable(_checked(("drift", "query_length"), author="Ada Quillfeather"))
    assert sent["delivered"] == ["drift:query_length"]
    logged = [r.getMessage() for r in caplog.records if r.getMessage().startswith("DRIFT ALERT")]
    assert logged == [
        "DRIFT ALERT: LLM Twin drift for Ada Quillfeather: query_length = 3.0 above threshold 1.0 (wasserstein), "
        "window 2026-11-21T11:00:00+00:00 .. 2026-11-21T12:00:00+00:00; report: /a/monitoring/all/20261121T110000Z-1h"
    ]


def test_a_retrieval_coverage_page_states_its_counts(dag, monkeypatch: pytest.MonkeyPatch, caplog) -> None:
    """The coverage signal's alert carries its counts in words (``detail``): the page says how many requests
    retrieved nothing, not only the interval's bound."""
    monkeypatch.delenv("TWIN_ALERT_WEBHOOK_URL", raising=False)
    monkeypatch.delenv("TWIN_ALERT_SLACK_CONN_ID", raising=False)
    caplog.set_level("INFO", logger="twin.alerts")
    checked = _checked(("drift", "retrieval_coverage"))
    detail = "0 of 412 requests retrieved a chunk (95% interval of the share: 0.0000 to 0.0092)"
    checked["alerts"][0].update(value=0.0092, threshold=0.5, method="wilson", drift_when="below", detail=detail)
    checked["alerts"][0]["html"] = "/a/monitoring/all/20261121T110000Z-1h/report.html"  # the page: what it links
    sent = dag.get_task("check_drift").python_callable(checked)
    assert sent["delivered"] == ["drift:retrieval_coverage"]
    logged = [r.getMessage() for r in caplog.records if r.getMessage().startswith("DRIFT ALERT")]
    assert logged == [
        f"DRIFT ALERT: LLM Twin drift: retrieval_coverage = 0.0092 below threshold 0.5 (wilson); {detail}, "
        "window 2026-11-21T11:00:00+00:00 .. 2026-11-21T12:00:00+00:00; "
        "report: /a/monitoring/all/20261121T110000Z-1h/report.html"
    ]


def test_only_new_drift_emits_the_drift_asset(dag) -> None:
    from types import SimpleNamespace

    from airflow.sdk.exceptions import AirflowSkipException
    from twin_ops.assets import DRIFT

    emit = dag.get_task("check_new_drift").python_callable
    outlet_events = {DRIFT: SimpleNamespace(extra=None)}
    sent = {"window": WINDOW_11, "report": "/r", "delivered": ["reminder:query_length", "resolved:latency_ms"]}
    with pytest.raises(AirflowSkipException, match="no new drift"):
        emit(sent, outlet_events=outlet_events)
    sent["delivered"].append("drift:answer_length")
    sent["retrain"] = ["answer_length"]
    assert emit(sent, outlet_events=outlet_events) == {
        "window": WINDOW_11,
        "signals": ["answer_length"],
        "report": "/r",
    }
    assert outlet_events[DRIFT].extra["signals"] == ["answer_length"]


def test_operational_drift_alerts_but_never_retrains(dag, monkeypatch: pytest.MonkeyPatch) -> None:
    """Latency, errors or retrieval scores drifting page on-call; only what users ask or how the twin
    answers schedules the retraining loop (new weights fix neither a slow node nor a store that is down)."""
    from types import SimpleNamespace

    import twin_ops.notifiers as notifiers
    from airflow.sdk.exceptions import AirflowSkipException
    from twin_ops.assets import DRIFT

    monkeypatch.setattr(notifiers, "send_drift_alerts", lambda result, context: result["alerts"])
    result = {
        "window": WINDOW_11,
        "report": "/r",
        "signals": {
            "latency_ms": {"scope": "operations"},
            "error_rate": {"scope": "operations"},
            "query_length": {"scope": "queries"},
        },
        "alerts": [{"kind": "drift", "signal": "latency_ms"}, {"kind": "drift", "signal": "error_rate"}],
    }
    sent = dag.get_task("check_drift").python_callable(result)
    assert (sent["delivered"], sent["retrain"]) == (["drift:latency_ms", "drift:error_rate"], [])
    emit = dag.get_task("check_new_drift").python_callable
    with pytest.raises(AirflowSkipException, match=r"operational drift only \(latency_ms, error_rate\)"):
        emit(sent, outlet_events={DRIFT: SimpleNamespace(extra=None)})
    result["alerts"].append({"kind": "drift", "signal": "query_length"})
    assert dag.get_task("check_drift").python_callable(result)["retrain"] == ["query_length"]


def test_closed_loop_schedules_and_switch(monkeypatch: pytest.MonkeyPatch) -> None:
    from airflow.sdk import Asset
    from twin_ops.assets import CLEANED, or_drift

    assert "twin://monitoring/drift" in str(or_drift(CLEANED))
    monkeypatch.setenv("TWIN_RETRAIN_ON_DRIFT", "false")
    assert or_drift(CLEANED) == CLEANED and isinstance(or_drift(CLEANED), Asset)
    monkeypatch.setenv("TWIN_RETRAIN_ON_DRIFT", "maybe")
    with pytest.raises(ValueError, match="TWIN_RETRAIN_ON_DRIFT"):
        or_drift(CLEANED)


class StatsdPackets:
    """Airflow's StatsD client pointed at a UDP socket on 127.0.0.1, with airflow.cfg's prefix."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        cfg = configparser.ConfigParser(interpolation=None)
        cfg.read(REPO_ROOT / "airflow.cfg")
        self.prefix = cfg.get("metrics", "statsd_prefix")
        self.udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.udp.bind(("127.0.0.1", 0))
        self.udp.settimeout(5)
        monkeypatch.setenv("AIRFLOW__METRICS__STATSD_ON", "True")
        monkeypatch.setenv("AIRFLOW__METRICS__STATSD_HOST", "127.0.0.1")
        monkeypatch.setenv("AIRFLOW__METRICS__STATSD_PORT", str(self.udp.getsockname()[1]))
        monkeypatch.setenv("AIRFLOW__METRICS__STATSD_PREFIX", self.prefix)
        self._initialize()

    @staticmethod
    def _initialize() -> None:
        from airflow.sdk._shared.observability.metrics import stats
        from airflow.sdk.observability.metrics import stats_utils

        stats.initialize(factory=stats_utils.get_stats_factory(), export_legacy_names=False)

    def next(self, metric: str) -> tuple[str, str]:
        """The next packet of ``metric`` (Airflow's own metrics may come first): (name, value)."""
        packet = ""
        while metric not in packet:
            packet = self.udp.recv(1024).decode()
        name, _, value = packet.partition(":")
        return name, value

    def close(self, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.undo()
        self._initialize()
        self.udp.close()


@pytest.fixture
def statsd(monkeypatch: pytest.MonkeyPatch) -> Iterator[StatsdPackets]:
    packets = StatsdPackets(monkeypatch)
    yield packets
    packets.close(monkeypatch)


def test_drift_counter_is_the_metric_the_prometheus_rule_alerts_on(statsd: StatsdPackets) -> None:
    """The notifier really sends `twin.drift_detected` over StatsD; with airflow.cfg's prefix and the
    StatsD exporter's default mapping (dots -> underscores) it is the series the chart's rule uses."""
    from twin_ops.notifiers import DRIFT_METRIC, emit_drift_metric

    rule = (REPO_ROOT / "charts" / "llm-twin" / "templates" / "prometheusrule.yaml").read_text()
    block = rule[rule.index("alert: LLMTwinDriftDetected") :]
    rule_metric = re.search(r"\b(airflow_twin_[a-z_]+)\b", block).group(1)
    emit_drift_metric("query_embedding")
    name, value = statsd.next(DRIFT_METRIC)
    assert name == f"{statsd.prefix}.{DRIFT_METRIC}" and value.startswith("1|c")
    assert name.replace(".", "_") == rule_metric == "airflow_twin_drift_detected"


def test_every_drift_check_adds_0_to_the_counter_so_the_series_exists_before_a_drift(
    dag, statsd: StatsdPackets, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A series born at 1 hides its first drift from increase(): every check sends 0 first, per signal."""
    from airflow.sdk.exceptions import AirflowSkipException
    from twin_ops.notifiers import DRIFT_METRIC

    monkeypatch.delenv("TWIN_ALERT_WEBHOOK_URL", raising=False)
    monkeypatch.delenv("TWIN_ALERT_SLACK_CONN_ID", raising=False)
    with pytest.raises(AirflowSkipException):
        dag.get_task("check_drift").python_callable(_checked())  # a check without drift
    assert [statsd.next(DRIFT_METRIC) for _ in range(2)] == [(f"{statsd.prefix}.{DRIFT_METRIC}", "0|c")] * 2
    dag.get_task("check_drift").python_callable(_checked(("drift", "query_length")))
    values = [statsd.next(DRIFT_METRIC)[1] for _ in range(3)]
    assert values == ["0|c", "0|c", "1|c"]  # the check's zeros, then the drift


# -- runs -------------------------------------------------------------------------------------------
def _asset_events(session: Any, uri: str) -> list[Any]:
    from airflow.models.asset import AssetEvent, AssetModel
    from sqlalchemy import select

    query = select(AssetEvent).join(AssetModel, AssetEvent.asset_id == AssetModel.id).where(AssetModel.uri == uri)
    return list(session.scalars(query))


@pytest.mark.slow
@needs_twin
def test_drift_alerts_the_webhook_once_and_queues_twin_datasets(
    sink: Sink, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    home = tmp_path / "twin"
    t0 = datetime(2026, 11, 21, 10, tzinfo=UTC)
    _seed(home, t0, 1, "reference")
    _seed(home, t0 + timedelta(hours=1), 1, "shifted")
    _use_home(monkeypatch, home)
    monkeypatch.setenv("TWIN_ALERT_WEBHOOK_URL", sink.url)

    from airflow import settings
    from airflow.models.asset import AssetDagRunQueue
    from airflow.utils import db
    from sqlalchemy import select

    db.initdb()
    dag = _parsed_dag("twin_monitoring")
    run = dag.test(logical_date=t0 + timedelta(hours=2))  # interval 11:00-12:00: the shifted hour
    states = {ti.task_id: ti.state for ti in run.get_task_instances()}
    assert run.state == "success" and set(states.values()) == {"success"}, states
    assert sorted(states) == ["check_drift", "check_new_drift", "drift_report", "record_alerts"]
    signals = {b["alert"]["signal"] for b in sink.bodies}
    assert {"query_embedding", "query_length", "retrieval_score"} <= signals
    assert len(sink.bodies) == len(signals)  # one alert per signal
    body = next(b for b in sink.bodies if b["alert"]["signal"] == "query_length")
    assert body["kind"] == "drift" and body["dag_id"] == "twin_monitoring"
    alert = body["alert"]
    assert alert["window"] == {
        "start": "2026-11-21T11:00:00+00:00",
        "end": "2026-11-21T12:00:00+00:00",
        "length": "1h",
        "key": "20261121T110000Z-1h",
    }
    assert alert["value"] > alert["threshold"] and alert["method"] == "wasserstein"
    assert alert["report"] == str(home / "artifacts" / "monitoring" / "all" / "20261121T110000Z-1h")
    assert "query_length" in body["text"] and alert["report"] in body["text"]
    result = json.loads(Path(alert["report"], "result.json").read_text())
    assert result["reference"]["kind"] == "previous" and result["reference"]["informational"] is False
    assert result["reference"]["window"]["key"] == "20261121T100000Z-1h"  # the hour before: recent traffic

    session = settings.Session()
    events = _asset_events(session, "twin://monitoring/drift")
    assert len(events) == 1 and events[0].extra["window"]["key"] == "20261121T110000Z-1h"
    queued = {q.target_dag_id for q in session.scalars(select(AssetDagRunQueue))}
    assert "twin_datasets" in queued, queued  # the closed loop: drift queues a dataset rebuild

    # the same window again: same report, nothing new sent, no new drift event
    sent = len(sink.bodies)
    rerun = dag.test(logical_date=t0 + timedelta(hours=2))
    states = {ti.task_id: ti.state for ti in rerun.get_task_instances()}
    assert states == {
        "drift_report": "success",
        "check_drift": "skipped",
        "record_alerts": "skipped",
        "check_new_drift": "skipped",
    }, states
    assert len(sink.bodies) == sent
    assert len(_asset_events(settings.Session(), "twin://monitoring/drift")) == 1


@pytest.mark.slow
@needs_twin
def test_a_webhook_outage_loses_no_drift_alert(sink: Sink, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The webhook refuses every alert: check_drift tries each, fails, is retried, fails again and pages
    (the failure alert, refused too); nothing is recorded as sent. The next run, webhook back: every alert
    is delivered, then recorded; a run after that sends nothing."""
    home = tmp_path / "twin"
    t0 = datetime(2026, 11, 21, 10, tzinfo=UTC)
    _seed(home, t0, 1, "reference")
    _seed(home, t0 + timedelta(hours=1), 1, "shifted")
    _use_home(monkeypatch, home)
    monkeypatch.setenv("TWIN_ALERT_WEBHOOK_URL", sink.url)

    from airflow.utils import db

    db.initdb()
    dag = _parsed_dag("twin_monitoring")
    check = dag.get_task("check_drift")
    check.retries, check.retry_delay, check.retry_exponential_backoff = 1, timedelta(0), False  # no waiting
    sink.status = 503
    run = dag.test(logical_date=t0 + timedelta(hours=2))
    tis = {ti.task_id: ti for ti in run.get_task_instances()}
    assert run.state == "failed"
    assert (tis["check_drift"].state, tis["check_drift"].try_number) == ("failed", 2)
    assert tis["record_alerts"].state == tis["check_new_drift"].state == "upstream_failed"
    drifts = [b for b in sink.refused if b.get("kind") == "drift"]
    signals = sorted({b["alert"]["signal"] for b in drifts})
    assert {"query_embedding", "query_length", "retrieval_score"} <= set(signals)
    assert len(drifts) == 2 * len(signals)  # every alert tried in each of the two tries
    failures = [b["text"] for b in sink.refused if "kind" not in b]
    assert len(failures) == 1 and failures[0].startswith("twin_monitoring.check_drift failed")
    assert "drift alerts reached no alert channel" in failures[0]
    folder = home / "artifacts" / "monitoring" / "all"
    assert not (folder / "20261121T110000Z-1h" / "alerts.json").exists()
    assert not (folder / "alert_state.json").exists()

    sink.status = 200
    run = dag.test(logical_date=t0 + timedelta(hours=2))
    assert run.state == "success"
    assert sorted(b["alert"]["signal"] for b in sink.bodies) == signals
    assert sorted(json.loads((folder / "20261121T110000Z-1h" / "alerts.json").read_text())) == signals
    state = json.loads((folder / "alert_state.json").read_text())
    assert sorted(state["signals"]) == signals and {s["status"] for s in state["signals"].values()} == {"open"}

    run = dag.test(logical_date=t0 + timedelta(hours=2))
    assert {ti.task_id: ti.state for ti in run.get_task_instances()}["check_drift"] == "skipped"
    assert len(sink.bodies) == len(signals)


@pytest.mark.slow
@needs_twin
def test_an_ongoing_drift_against_a_baseline_pages_once_then_resolves_once(
    sink: Sink, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """--reference baseline: two shifted hours after the pinned one page once (the second hour is still
    drifting: no new page, no new drift event), the hour back to normal sends one "resolved" per signal."""
    home = tmp_path / "twin"
    t0 = datetime(2026, 11, 21, 10, tzinfo=UTC)
    _seed(home, t0, 1, "reference")
    _seed(home, t0 + timedelta(hours=1), 2, "shifted")
    _seed(home, t0 + timedelta(hours=3), 1, "reference")
    _use_home(monkeypatch, home)
    monkeypatch.setenv("TWIN_ALERT_WEBHOOK_URL", sink.url)

    from airflow import settings
    from airflow.utils import db

    db.initdb()
    dag = _parsed_dag("twin_monitoring")
    conf = {"reference": "baseline", "baseline_end": (t0 + timedelta(hours=1)).isoformat()}
    pages: list[list[tuple[str, str]]] = []
    events = len(_asset_events(settings.Session(), "twin://monitoring/drift"))  # other tests' runs
    for hour in (2, 3, 4):  # the windows 11:00, 12:00 (both shifted) and 13:00 (back to normal)
        sent = len(sink.bodies)
        run = dag.test(logical_date=t0 + timedelta(hours=hour), run_conf=conf)
        assert run.state == "success", {ti.task_id: ti.state for ti in run.get_task_instances()}
        pages.append(sorted((b["kind"], b["alert"]["signal"]) for b in sink.bodies[sent:]))
    drifted = [signal for _, signal in pages[0]]
    assert {"query_embedding", "query_length", "retrieval_score"} <= set(drifted)
    assert pages[0] == [("drift", s) for s in drifted]
    assert pages[1] == []  # still drifting against the baseline: no page (a reminder after 24 h)
    assert pages[2] == [("drift_resolved", s) for s in drifted]
    resolved = next(b for b in sink.bodies if b["kind"] == "drift_resolved" and b["alert"]["signal"] == "query_length")
    assert resolved["text"].startswith("LLM Twin drift resolved: query_length = ")
    assert "drifting since 2026-11-21T12:00:00+00:00" in resolved["text"]
    assert len(_asset_events(settings.Session(), "twin://monitoring/drift")) == events + 1  # the new drift only
    state = json.loads((home / "artifacts" / "monitoring" / "all" / "alert_state.json").read_text())
    assert {s["status"] for s in state["signals"].values()} == {"resolved"}


@pytest.mark.slow
@needs_twin
def test_reference_baseline_compares_with_the_pinned_window(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The form's baseline reaches `twin monitor drift`: the checked hour is compared with the pinned hour
    before baseline_end, not with the (shifted) hour before it; without baseline_end the step fails at once."""
    home = tmp_path / "twin"
    t0 = datetime(2026, 11, 21, 10, tzinfo=UTC)
    _seed(home, t0, 1, "reference")
    _seed(home, t0 + timedelta(hours=1), 1, "shifted")
    _seed(home, t0 + timedelta(hours=2), 1, "reference")
    _use_home(monkeypatch, home)

    from airflow.utils import db

    db.initdb()
    dag = _parsed_dag("twin_monitoring")
    conf = {"reference": "baseline", "baseline_end": (t0 + timedelta(hours=1)).isoformat()}
    run = dag.test(logical_date=t0 + timedelta(hours=3), run_conf=conf)  # checks 12:00-13:00
    states = {ti.task_id: ti.state for ti in run.get_task_instances()}
    assert run.state == "success" and states.pop("drift_report") == "success", states
    assert states == {"check_drift": "skipped", "record_alerts": "skipped", "check_new_drift": "skipped"}
    report = home / "artifacts" / "monitoring" / "all" / "20261121T120000Z-1h"
    result = json.loads((report / "result.json").read_text())
    assert result["reference"]["kind"] == "baseline" and result["reference"]["informational"] is False
    assert result["reference"]["window"]["key"] == "20261121T100000Z-1h"  # the pinned hour, not 11:00
    assert result["verdict"] == "no_drift", result["drifted"]

    dag = _parsed_dag("twin_monitoring")  # afresh: dag.test() keeps the last run_conf in dag.params
    run = dag.test(logical_date=t0 + timedelta(hours=2), run_conf={"reference": "baseline"})
    tis = {ti.task_id: ti for ti in run.get_task_instances()}
    assert run.state == "failed"
    assert (tis["drift_report"].state, tis["drift_report"].try_number) == ("failed", 1)  # bad input: no retry


def _airflow_cli(*args: str) -> None:
    """Run an `airflow …` command in this process (same metadata DB and config as the test)."""
    from airflow.cli import cli_parser

    parsed = cli_parser.get_parser().parse_args(list(args))
    parsed.func(parsed)


@pytest.mark.slow
@needs_twin
def test_backfill_of_three_past_hours_gives_three_reports(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    home = tmp_path / "twin"
    t0 = datetime(2026, 11, 20, 9, tzinfo=UTC)
    _seed(home, t0, 4, "reference")  # 09:00-13:00, like each other
    _use_home(monkeypatch, home)

    from airflow.models.dagrun import DagRun
    from airflow.utils import db
    from airflow.utils.types import DagRunType

    db.initdb()  # a migrated SQLite metadata DB in the test's AIRFLOW_HOME
    _airflow_cli("dags", "reserialize")
    _airflow_cli(
        "backfill",
        "create",
        "--dag-id",
        "twin_monitoring",
        "--from-date",
        "2026-11-20T10:00:00+00:00",
        "--to-date",
        "2026-11-20T12:00:00+00:00",
    )
    runs = sorted(DagRun.find(dag_id="twin_monitoring", run_type=DagRunType.BACKFILL_JOB), key=lambda r: r.logical_date)
    assert [(r.data_interval_start.hour, r.data_interval_end.hour) for r in runs] == [(10, 11), (11, 12), (12, 13)]
    for run in runs:  # what the scheduler would do with each queued backfill run: run its report step
        _airflow_cli("tasks", "test", "twin_monitoring", "drift_report", run.run_id)

    folder = home / "artifacts" / "monitoring" / "all"
    assert sorted(p.name for p in folder.iterdir()) == [
        "20261120T100000Z-1h",
        "20261120T110000Z-1h",
        "20261120T120000Z-1h",
    ]
    for report in folder.iterdir():
        result = json.loads((report / "result.json").read_text())
        assert result["rows"] == 40 and result["verdict"] == "no_drift", (report.name, result["drifted"])
        assert not (report / "queries.html").exists()  # the hourly check draws no plots (--plots does)
