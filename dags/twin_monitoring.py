"""
### twin_monitoring — hourly drift reports on what the twin is asked and how it answers

Every hour, `twin monitor drift --alert` checks **its own data interval** (`--end` = the run's
`data_interval_end`, `--window 1h`): a backfill (`airflow backfill create --dag-id twin_monitoring
--from-date … --to-date … --max-active-runs 1`) gives one report per past hour, one hour at a time
(without `--max-active-runs 1` a backfill runs up to 10 windows at once, whatever `max_active_runs=1`
says, and two windows checked before either's `record_alerts` page the same drift twice). Evidently 0.7
compares the window's requests in the inference log with recent production traffic, by default the hour
before it (`reference` below): query embeddings (explicit embeddings-drift method), query and answer length,
out-of-vocabulary share and language, retrieval scores, latency and error rate. The result
(`result.json`) lands in the artifact store under `monitoring/<author>/<window>/`. A window with too
few requests (or too few before it) is "not enough data", never an alert.

`check_drift` sends the alerts due: a newly drifted signal, a reminder while it stays open, one when it
resolves (log; the JSON webhook
`TWIN_ALERT_WEBHOOK_URL`; Slack through the Airflow connection named by `TWIN_ALERT_SLACK_CONN_ID`),
increments the StatsD counter `twin.drift_detected` (the chart's PrometheusRule), and, when what users ask
or how the twin answers drifted (not for operations: retrieval scores, latency, errors), emits
`twin://monitoring/drift`, which schedules `twin_datasets` again to rebuild the datasets (the closed loop;
`TWIN_RETRAIN_ON_DRIFT=false` turns it off). Training follows only when that build made a new dataset
version (the corpus changed since the last build) and `twin_training` retrains on it; on an unchanged
corpus the build returns the existing versions, `check_versions` skips with its reason in the log, and
nothing is retrained (the same data would make the same model). A re-run of a window sends nothing new
and emits nothing.

**Trigger form:** `author` (empty = every author's requests together), `reference` (previous:
recent production traffic, the alerting default; baseline: a pinned window of the same length ending
at `baseline_end`, which it needs; training: an informational comparison with the training data that
never alerts; it also compares the documents crawled in the window with the training corpus),
`baseline_end` (ISO 8601 date-time, only with `reference` baseline: refused with the others; empty is
passed as `--baseline-end ""`, which `twin monitor drift` reads as not given, like `--author ""`).
The hourly run draws no plots (`twin monitor drift --plots` adds Evidently's HTML reports); every run writes
the check's readable `report.html`, which each alert links.
An alert is recorded as sent (`record_alerts`) only once delivered, and `check_new_drift` emits the Asset.
"""

from __future__ import annotations

from datetime import timedelta

from airflow.sdk import Param, dag, task
from twin_ops import dag_kwargs, twin_step
from twin_ops.assets import DRIFT

# Drift that retraining can answer: what users ask and how the twin answers. Operations (retrieval scores,
# latency, the server error rate) page on-call but never retrain: new weights fix neither a slow node nor a
# store that is down.
RETRAIN_SCOPES = ("queries", "answers")
WINDOW = "1h"  # the schedule's data interval


@dag(
    dag_id="twin_monitoring",
    schedule="@hourly",
    params={
        "author": Param("", type="string", title="Author", description="Full name; empty = every author."),
        "reference": Param(
            "previous",
            enum=["previous", "baseline", "training"],
            title="Reference",
            description="previous = the windows before this one (alerts); baseline = a pinned window "
            "ending at baseline_end (alerts); training = the latest instruct dataset, an informational "
            "report that never alerts.",
        ),
        "baseline_end": Param(
            None,
            type=["null", "string"],
            format="date-time",
            pattern=r"^$|^\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}",
            title="Baseline end",
            description="End of the pinned baseline window (ISO 8601, e.g. 2026-11-01T00:00:00+00:00); "
            "required with reference baseline; leave it empty with the other references (refused there).",
        ),
    },
    **dag_kwargs(
        __doc__, tags=["monitoring", "drift"], step_timeout=timedelta(minutes=40), deadline=timedelta(minutes=50)
    ),
)
def twin_monitoring() -> None:
    window = ["--window", WINDOW, "--end", "{{ (data_interval_end or dag_run.run_after).isoformat() }}"]
    report = twin_step(
        "drift_report",
        [
            "monitor",
            "drift",
            *window,
            "--reference",
            "{{ params.reference }}",
            "--baseline-end",
            "{{ params.baseline_end or '' }}",
            "--author",
            "{{ params.author }}",
            "--alert",
        ],
        profile="cpu",
    )

    @task
    def check_drift(result: dict | None, **context) -> dict:
        """Deliver the alerts due (new drift, reminders, resolved signals); fail when one reached no
        configured channel (retried, then the failure alert); skipped when none is due."""
        from airflow.sdk.exceptions import AirflowSkipException
        from twin_ops.notifiers import send_drift_alerts

        alerts = send_drift_alerts(result, context)
        delivered = [f"{a['kind']}:{a['signal']}" for a in alerts]
        print(f"verdict: {(result or {}).get('verdict')}; alerts delivered: {delivered}")
        if not alerts:
            raise AirflowSkipException("no alert due for this window")
        scopes = {name: entry.get("scope") for name, entry in (result.get("signals") or {}).items()}
        content = [a["signal"] for a in alerts if a["kind"] == "drift" and scopes.get(a["signal"]) in RETRAIN_SCOPES]
        return {"window": result["window"], "delivered": delivered, "retrain": content, "report": result["report"]}

    # after the delivery, never before: what a channel took is recorded as sent (alerts.json, alert_state.json)
    record = twin_step(
        "record_alerts",
        [
            "monitor",
            "record-alerts",
            *window,
            "--author",
            "{{ params.author }}",
            "--delivered",
            "{{ ti.xcom_pull(task_ids='check_drift')['delivered'] | join(',') }}",
        ],
        profile="cpu",
    )

    @task(outlets=[DRIFT])
    def check_new_drift(sent: dict, **context) -> dict:
        """Emit the drift Asset for signals of what users ask or how the twin answers that newly drifted
        (reminders, resolved signals, and operations such as latency or errors: skipped, no event)."""
        from airflow.sdk.exceptions import AirflowSkipException

        signals = sent.get("retrain") or []
        if not signals:
            new = [d.split(":", 1)[1] for d in sent["delivered"] if d.startswith("drift:")]
            raise AirflowSkipException(
                f"operational drift only ({', '.join(new)}): alerted, no retraining" if new else "no new drift"
            )
        extra = {"window": sent["window"], "signals": signals, "report": sent["report"]}
        context["outlet_events"][DRIFT].extra = extra
        return extra

    sent = check_drift(report.output)
    sent >> record >> check_new_drift(sent)


twin_monitoring()
