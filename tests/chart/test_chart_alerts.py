"""On-call: the PrometheusRule's alerts fire on the first event of a series and read series the code
exports, and a `helm install` can hand Airflow's notifiers their webhook and Slack channels.

The rules' behaviour over time (first events, scrape gaps, counters born at 0) is checked by
`promtool test rules` (tests/chart/promtool/alerts_test.yaml) where promtool is installed (PATH or
$PROMTOOL; Debian's `prometheus` package has it); everywhere else the expressions are pinned below.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess

import chart_render as cr  # noqa: E402  (tests/chart/conftest.py puts it on sys.path)
import helm_python  # noqa: F401 - a dev dependency: missing is a failure, not a skip
import kubernetes_validate  # noqa: F401 - a dev dependency: missing is a failure, not a skip
import pytest
import yaml

APIS = (cr.KSERVE_API, *cr.PROMETHEUS_APIS)
PROMTOOL_TESTS = cr.REPO / "tests" / "chart" / "promtool" / "alerts_test.yaml"


def _rules(values=None) -> dict[str, dict]:
    (rule,) = cr.find(cr.objects(cr.render(values, api_versions=APIS)), "PrometheusRule")
    return {r["alert"]: r for g in rule["spec"]["groups"] for r in g["rules"]}


def _events(series: str, window: str) -> str:
    """What the chart's llm-twin.promql.events renders for one counter and window."""
    new_series = f"({series} unless present_over_time({series}[30m] offset {window}))"
    scraping = f'count(present_over_time(up{{namespace="{cr.NAMESPACE}"}}[30m] offset {window}))'
    return f"(increase({series}[{window}]) > 0)\n  or (\n    {new_series}\n      and on() {scraping}\n  )"


def _indent(text: str, spaces: int) -> str:
    return "\n".join(" " * spaces + line for line in text.splitlines())


# --------------------------------------------------------------------------- the expressions


def test_pipeline_alerts_count_the_first_event_of_a_series():
    """increase() alone is 0 for a series whose first sample is already 1 (prometheus/prometheus#1673): the
    StatsD exporter's series start at 1, so the first drift and the first failure of each DAG after it
    starts never fired. Each branch is matched per series before aggregation, and the dag_id stays."""
    rules = _rules()
    dag = 'airflow_dagrun_failed_count{dag_id=~"twin_.*"}'
    assert rules["LLMTwinDagRunFailed"]["expr"] == f"sum by (dag_id) (\n{_indent(_events(dag, '1h'), 2)}\n) > 0\n"
    drift = "airflow_twin_drift_detected"
    assert rules["LLMTwinDriftDetected"]["expr"] == f"sum(\n{_indent(_events(drift, '2h'), 2)}\n) > 0\n"
    for name in ("LLMTwinDagRunFailed", "LLMTwinDriftDetected"):
        expr = rules[name]["expr"]
        # never a bare increase(): the > 0 filter makes `or` take the new-series branch for a series at 1
        assert re.findall(r"increase\([^)]*\]\)", expr) and "]) > 0)" in expr, name
        assert "unless present_over_time(" in expr, name
        # a series is new only where Prometheus was scraping in the lookback: after a Prometheus outage
        # longer than 30 minutes an old count is not paged again (promtool case "Prometheus outage ...")
        assert f'and on() count(present_over_time(up{{namespace="{cr.NAMESPACE}"}}[30m] offset ' in expr, name


def test_request_log_failures_page():
    """A broken request log blinds drift monitoring and the canary analysis: any failed write pages."""
    rule = _rules()["LLMTwinRequestLogFailing"]
    series = f'twin_request_log_failures_total{{namespace="{cr.NAMESPACE}"}}'
    assert rule["expr"] == f"sum by (namespace, pod) (\n{_indent(_events(series, '15m'), 2)}\n) > 0\n"
    assert rule["labels"] == {"severity": "warning", "team": "llm-twin"}
    assert rule["for"] == "0m"
    text = rule["annotations"]["summary"] + rule["annotations"]["description"]
    for needed in ("{{ $labels.pod }}", "inference_logs", "MongoDB", "twin_monitoring", "request log write failed"):
        assert needed in text, needed
    off = {"alerts": {"rules": {"requestLogFailures": {"enabled": False}}}}
    assert "LLMTwinRequestLogFailing" not in _rules(off)
    custom = _rules({"alerts": {"rules": {"requestLogFailures": {"for": "5m", "severity": "critical"}}}})
    assert custom["LLMTwinRequestLogFailing"]["for"] == "5m"
    assert custom["LLMTwinRequestLogFailing"]["labels"]["severity"] == "critical"


def _serving_metric_names() -> set[str]:
    """Metric names twin-serving exports (src/twin_core/serving/metrics.py), with their labels."""
    text = (cr.REPO / "src" / "twin_core" / "serving" / "metrics.py").read_text()
    return {m.group(1) for m in re.finditer(r'(?:Counter|Gauge|Histogram)\(\s*"(\w+)"', text)}


def test_rules_read_series_that_are_exported():
    """Every series a rule reads: a metric of twin-serving, or an Airflow StatsD name through the Airflow
    chart's exporter mapping (airflow.dagrun.duration.failed.<dag_id> -> airflow_dagrun_failed{dag_id}, a
    summary; an unmapped counter keeps its dotted name with underscores)."""
    serving = _serving_metric_names()
    assert {"twin_serving_requests_total", "twin_request_log_failures_total"} <= serving
    metrics_py = (cr.REPO / "src" / "twin_core" / "serving" / "metrics.py").read_text()
    # unlabelled, so the rule's label set is the scrape's own (namespace, pod, ...)
    assert 'Counter("twin_request_log_failures_total", "inference_logs writes that failed")' in metrics_py
    notifiers = (cr.REPO / "plugins" / "twin_ops" / "notifiers.py").read_text()
    (drift,) = re.findall(r'DRIFT_METRIC = "([\w.]+)"', notifiers)
    statsd = {"airflow_" + drift.replace(".", "_"), "airflow_dagrun_failed_count"}
    read = set()
    for rule in _rules().values():
        names = set(re.findall(r"\b((?:twin|airflow)_\w+)\b", rule["expr"]))
        read |= names
        assert names <= serving | statsd, (rule["alert"], names - serving - statsd)
    assert statsd <= read  # both StatsD series are read


def test_annotations_point_to_what_exists():
    rules = _rules()
    drift = rules["LLMTwinDriftDetected"]["annotations"]["description"]
    assert "reports/drift" not in drift
    # evidently_reports.py: monitoring/<author_slug|all>/<window key>/ in the artifact store
    assert f"{cr.chart_values()['artifacts']['uri']}/monitoring/<author slug, or all>/" in drift
    assert "result.json" in drift and "alerts.json" in drift and "--plots" in drift
    reports_py = (cr.REPO / "src" / "twin_core" / "monitoring" / "evidently_reports.py").read_text()
    assert 'PREFIX = "monitoring"' in reports_py and 'RESULT_FILE = "result.json"' in reports_py
    assert 'ALERTS_FILE = "alerts.json"' in reports_py and 'slugify(author) if author else "all"' in reports_py
    for rule in rules.values():
        for text in rule["annotations"].values():
            # Prometheus templates survive Helm: {{ $labels.x }}, never a Helm leftover
            assert "<no value>" not in text and "%!" not in text, rule["alert"]
            for label in re.findall(r"\$labels\.(\w+)", text):
                assert label in re.sub(r"\s", "", rule["expr"]).split("by(")[-1].split(")")[0], (rule["alert"], label)


def _promtool() -> str | None:
    return os.environ.get("PROMTOOL") or shutil.which("promtool")


NO_PROMTOOL = "promtool is not installed (Debian package prometheus; or set $PROMTOOL)"


@pytest.mark.skipif(_promtool() is None, reason=NO_PROMTOOL)
def test_rules_pass_promtool_unit_tests(tmp_path):
    """First events, a scrape gap, a replaced exporter, counters born at 0, a Prometheus outage longer than
    30 minutes, request-log failures and the 5xx ratio, evaluated by Prometheus' own engine (annotations
    are checked above, not here)."""
    (rule,) = cr.find(cr.objects(cr.render(None, api_versions=APIS)), "PrometheusRule")
    groups = rule["spec"]["groups"]
    for group in groups:
        for r in group["rules"]:
            r.pop("annotations")
    (tmp_path / "rules.yaml").write_text(yaml.safe_dump({"groups": groups}, sort_keys=False))
    shutil.copy(PROMTOOL_TESTS, tmp_path / PROMTOOL_TESTS.name)
    for args in (["check", "rules", "rules.yaml"], ["test", "rules", PROMTOOL_TESTS.name]):
        run = subprocess.run([_promtool(), *args], cwd=tmp_path, capture_output=True, text=True, timeout=120)
        assert run.returncode == 0, run.stdout + run.stderr


# --------------------------------------------------------------------------- Airflow's alert channels

CHANNELS = {
    "webhookUrlFromSecret": {"name": "llm-twin-alerts", "key": "webhook-url"},
    "slackConnId": "twin_slack",
    "slackConnectionFromSecret": {"name": "llm-twin-alerts", "key": "slack"},
}
# A stand-in for the Airflow chart's containers: its custom_airflow_environment renders `extraEnv` with
# `tpl` in the Airflow chart's own context, into the scheduler, triggerer, DAG processor, API server,
# workers and the KubernetesExecutor pod template.
AIRFLOW_STUB = """\
apiVersion: v1
kind: Pod
metadata:
  name: stub-airflow-scheduler
  namespace: {{ .Release.Namespace }}
spec:
  containers:
    - name: scheduler
      image: stub
      env:
        - name: AIRFLOW__CORE__EXECUTOR
          value: LocalExecutor
        {{- $Global := . }}
        {{- with .Values.extraEnv }}
          {{- tpl . $Global | nindent 8 }}
        {{- end }}
"""


def _airflow_env(tmp_path, channels: dict | None, **values) -> list[dict]:
    chart = cr.with_stub_dependencies(tmp_path)
    (chart / "charts" / "airflow" / "templates" / "marker.yaml").write_text(AIRFLOW_STUB)
    merged = {**values, "global": {"alertChannels": channels}} if channels is not None else values or None
    objs = cr.objects(cr.render(merged, chart_dir=chart))
    (pod,) = cr.find(objs, "Pod", "stub-airflow-scheduler")
    assert cr.validate_object(pod) == []
    return pod["spec"]["containers"][0]["env"]


def test_alert_channels_reach_every_airflow_container(tmp_path):
    """TWIN_ALERT_WEBHOOK_URL and TWIN_ALERT_SLACK_CONN_ID, the variables plugins/twin_ops/notifiers.py
    reads in the Airflow processes, and the Slack connection, from Secrets (never inlined)."""
    env = {e["name"]: e for e in _airflow_env(tmp_path, CHANNELS)}
    assert env["TWIN_ALERT_WEBHOOK_URL"] == {
        "name": "TWIN_ALERT_WEBHOOK_URL",
        "valueFrom": {"secretKeyRef": {"name": "llm-twin-alerts", "key": "webhook-url", "optional": True}},
    }
    assert env["TWIN_ALERT_SLACK_CONN_ID"] == {"name": "TWIN_ALERT_SLACK_CONN_ID", "value": "twin_slack"}
    # Airflow finds connection <id> in AIRFLOW_CONN_<ID upper-cased>
    assert env["AIRFLOW_CONN_TWIN_SLACK"]["valueFrom"]["secretKeyRef"] == {
        "name": "llm-twin-alerts",
        "key": "slack",
        "optional": True,
    }
    assert {"TWIN_ALERT_WEBHOOK_URL", "TWIN_ALERT_SLACK_CONN_ID"} <= _notifier_variables()


def _notifier_variables() -> set[str]:
    """TWIN_* variables plugins/twin_ops/notifiers.py reads from the environment, directly or by a constant."""
    text = (cr.REPO / "plugins" / "twin_ops" / "notifiers.py").read_text()
    names = set(re.findall(r'environ\.get\(\s*"(TWIN_\w+)"', text))
    for const, name in re.findall(r'^(\w+) = "(TWIN_\w+)"$', text, re.M):
        if re.search(rf"environ\.get\(\s*{const}\b", text):
            names.add(name)
    return names


def test_no_alert_channel_by_default(tmp_path):
    env = _airflow_env(tmp_path, None)
    assert [e["name"] for e in env] == ["AIRFLOW__CORE__EXECUTOR"]
    assert cr.chart_values()["global"]["alertChannels"]["webhookUrlFromSecret"]["name"] == ""
    only_slack = _airflow_env(tmp_path / "slack", {"slackConnId": "slack_default"})
    assert [e["name"] for e in only_slack] == ["AIRFLOW__CORE__EXECUTOR", "TWIN_ALERT_SLACK_CONN_ID"]


def test_own_airflow_extra_env_must_keep_the_alert_channels(tmp_path):
    own = '- name: FOO\n  value: bar\n{{ include "llm-twin.airflowAlertEnv" . }}'
    env = [e["name"] for e in _airflow_env(tmp_path, CHANNELS, airflow={"extraEnv": own})]
    assert env[:2] == ["AIRFLOW__CORE__EXECUTOR", "FOO"] and "TWIN_ALERT_WEBHOOK_URL" in env
    with pytest.raises(cr.helm().HelmError, match="llm-twin.airflowAlertEnv"):
        cr.render({"global": {"alertChannels": CHANNELS}, "airflow": {"extraEnv": "- name: FOO\n  value: bar"}})
    # without alert channels, any extraEnv is fine
    cr.render({"airflow": {"extraEnv": "- name: FOO\n  value: bar"}})


@pytest.mark.parametrize(
    "channels, key",
    [
        ({"webhookUrl": "https://hooks.example.com/x"}, "webhookUrl"),  # never inlined
        ({"webhookUrlFromSecret": {"name": "Alerts"}}, "/global/alertChannels/webhookUrlFromSecret/name"),
        ({"slackConnectionFromSecret": {"name": "alerts"}}, "/global/alertChannels"),  # whose connection?
        ({"slackConnId": "my slack"}, "/global/alertChannels/slackConnId"),
    ],
    ids=["inline-url", "bad-secret-name", "connection-without-id", "conn-id-with-space"],
)
def test_schema_rejects_bad_alert_channels(channels, key):
    h = cr.helm()
    with h.Chart.load(cr.CHART) as chart, pytest.raises(h.HelmValuesError) as exc:
        chart.validate_schema({"global": {"alertChannels": channels}})
    assert key in str(exc.value)


def test_notes_say_where_alerts_go():
    quiet = cr.notes(cr.render(None, api_versions=APIS))
    assert "go to the Airflow log only" in quiet and "global.alertChannels.webhookUrlFromSecret" in quiet
    assert 'docs/deploy.md, "Alerts"' in quiet and "No PrometheusRule" not in quiet
    wired = cr.notes(cr.render({"global": {"alertChannels": CHANNELS}}, api_versions=APIS))
    assert 'TWIN_ALERT_WEBHOOK_URL (every alert), from Secret "llm-twin-alerts" key "webhook-url"' in wired
    assert 'connection "twin_slack" (type slackwebhook), AIRFLOW_CONN_TWIN_SLACK from Secret "llm-twin-alerts"' in wired
    # helm template / a dry run cannot see the Secret: it says so
    assert 'WARNING: key "webhook-url" of Secret "llm-twin-alerts" was not found' in wired
    no_operator = cr.notes(cr.render(None, api_versions=(cr.KSERVE_API,)))
    assert "No PrometheusRule" in no_operator
    without_airflow = cr.notes(cr.render({"airflow": {"enabled": False}}, api_versions=APIS))
    assert "On-call" not in without_airflow


def test_deploy_docs_explain_on_call():
    docs = (cr.REPO / "docs" / "deploy.md").read_text()
    assert "\n### Alerts\n" in docs
    section = docs.split("\n### Alerts\n", 1)[1].split("\n## ", 1)[0]
    for needed in (
        "TWIN_ALERT_WEBHOOK_URL",
        "TWIN_ALERT_SLACK_CONN_ID",
        "global.alertChannels.webhookUrlFromSecret",
        "global.alertChannels.slackConnId",
        "global.alertChannels.slackConnectionFromSecret",
        "slackwebhook",
        "alerts.labels",
        *_rules(),
    ):
        assert needed in section, needed
    # its example values are valid and wire what they say
    (example,) = re.findall(r"```yaml\n(global:\n.*?)```", section, re.S)
    with cr.helm().Chart.load(cr.CHART) as chart:
        chart.validate_schema(yaml.safe_load(example))
