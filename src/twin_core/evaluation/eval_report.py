"""The evaluation report: JSON and a readable HTML page in the artifact store, logged to Comet.

Artifact ``evaluations/<author_slug>/<model_version>/vNNNN/``: ``report.json``, ``report.html`` and,
offline, ``comet/<key>.zip`` (the Comet archive, uploadable later with ``comet upload``);
``metadata.json`` last. Comet runs online when COMET_API_KEY is set, offline otherwise.
"""

from __future__ import annotations

import json
import logging
import tempfile
from pathlib import Path
from typing import Any

from twin_core.settings import Settings
from twin_core.stores.artifacts import open_artifact_store

log = logging.getLogger(__name__)

LABELS = {
    "perplexity": ("Perplexity (held-out author text)", "lower"),
    "topic_similarity": ("Topic similarity (embedding cosine vs the author's answer)", "higher"),
    "style_distance": ("Style distance (Burrows' Delta vs the author's held-out text)", "lower"),
    "attribution": ("Answers attributed to the author (stylometry)", "higher"),
    "rouge_l": ("ROUGE-L F1 vs the author's answer", "higher"),
    "judge_accuracy": ("Judge: accuracy (1-3)", "higher"),
    "judge_style": ("Judge: style (1-3)", "higher"),
    "groundedness": ("Groundedness in the retrieved context", "higher"),
}

TEMPLATE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<title>Evaluation {{ r.candidate.ref }} vs {{ r.baseline.ref }}</title>
<style>
body{font-family:system-ui,sans-serif;margin:2rem auto;max-width:70rem;color:#222;line-height:1.4}
table{border-collapse:collapse;margin:1rem 0;width:100%}td,th{border:1px solid #ccc;padding:.35rem .6rem;
text-align:left;vertical-align:top}th{background:#f4f4f4}.pass{color:#0a7d29;font-weight:600}
.fail{color:#b00020;font-weight:600}.missing{color:#8a6d00;font-weight:600}.num{text-align:right;
font-variant-numeric:tabular-nums}.banner{padding:.8rem 1rem;border-radius:6px;font-size:1.2rem}
.banner.pass{background:#e6f4ea}.banner.fail{background:#fde7e9}details{margin:.4rem 0}
pre{white-space:pre-wrap;margin:0}
</style></head><body>
<h1>Evaluation: {{ r.candidate.ref }}</h1>
<p>Author <b>{{ r.author }}</b> &middot; dataset <code>{{ r.dataset_version }}</code> (test split,
{{ r.rows }} rows) &middot; baseline <code>{{ r.baseline.ref }}</code>{% if r.baseline.note %}
({{ r.baseline.note }}){% endif %} &middot; {{ created }}</p>
<div class="banner {{ r.gate.decision }}">Gate: <b>{{ r.gate.decision | upper }}</b> on {{ r.rows }} held-out rows
{% if r.gate.failing %}&mdash; failing: {{ r.gate.failing | join(", ") }}{% endif %}
{% if r.gate.missing %}&mdash; missing: {{ r.gate.missing | join(", ") }}
{% endif %}</div>
{% set failed = r.gate.checks | selectattr("outcome", "in", ["fail", "missing"]) | list %}
{% set skipped = r.gate.checks | selectattr("outcome", "equalto", "skipped") | list %}
{% if failed %}<p>Why the gate failed:</p><ul>{% for c in failed %}<li><b>{{ c.metric }}</b>
{{ "failed" if c.outcome == "fail" else "missing (required: fails closed)" }} on {{ c.rows }} paired rows
{%- if c.diff is not none %}, difference {{ fmt(c.diff) }} [{{ fmt(c.low) }}, {{ fmt(c.high) }}]{% endif %}:
{{ c.reason }}</li>{% endfor %}</ul>
{% elif not r.gate.passed %}<p>Why the gate failed: no metric could be measured (it fails closed).</p>{% endif %}
{% if skipped %}<p>Decided without these optional metrics, their data missing:</p><ul>{% for c in skipped %}
<li><b>{{ c.metric }}</b>: {{ c.reason }}</li>{% endfor %}</ul>{% endif %}
<p>Paired rows: each metric compares candidate and baseline on the same held-out rows; the interval is a
{{ (r.gate.confidence * 100) | round | int }} % bootstrap interval of the mean paired difference, taken in
the good direction (positive favours the candidate; log ratio for perplexity). A gated metric's candidate and
baseline columns are the means over its paired rows (an ungated one's over the rows each model was measured
on); a rule with an absolute bound (min / max) decides on the interval of the candidate's mean, shown next
to it.</p>
<h2>Metrics</h2>
<table><tr><th>metric</th><th>better</th><th class="num">candidate</th><th class="num">baseline</th>
<th class="num">paired rows</th><th class="num">difference [interval]</th><th>gate rule</th><th>outcome</th></tr>
{% for name, (label, better) in labels.items() %}{% set c = checks.get(name) %}
{% set decided = c and c.candidate is not none %}{% set cm = c.candidate if decided else r.metrics.candidate[name] %}
<tr><td>{{ label }}</td><td>{{ better }}</td><td class="num">{{ fmt(cm) }}{% if c and c.candidate_low is not none %}
[{{ fmt(c.candidate_low) }}, {{ fmt(c.candidate_high) }}]{% endif %}</td>
<td class="num">{{ fmt(c.baseline if decided else r.metrics.baseline[name]) }}</td>
<td class="num">{{ c.rows if c else "" }}</td>
<td class="num">{% if c and c.diff is not none %}{{ fmt(c.diff) }} [{{ fmt(c.low) }}, {{ fmt(c.high) }}]{% endif %}</td>
<td>{{ c.rule if c else "(not gated)" }}</td>
<td class="{{ c.outcome if c else '' }}">{{ c.outcome if c else "" }}
{%- if c and c.reason %}: {{ c.reason }}{% endif %}</td></tr>
{% endfor %}</table>
<h2>Stylometry</h2>
<p>{{ r.stylometry.measure }}, over {{ r.stylometry.reference_texts }} held-out texts of the author.
Pooled answers: candidate <b>{{ fmt(r.stylometry.distance.candidate) }}</b>, baseline
<b>{{ fmt(r.stylometry.distance.baseline) }}</b>.
{% if r.stylometry.attribution_share %}Answers attributed to the author among {{ r.stylometry.authors | join(", ") }}:
{% set sci = r.stylometry.attribution_ci95 or {} %}candidate
<b>{{ fmt(r.stylometry.attribution_share.candidate) }}</b>{% if sci.candidate %}
(95 % CI {{ pct(sci.candidate[0]) }}-{{ pct(sci.candidate[1]) }}){% endif %}, baseline
<b>{{ fmt(r.stylometry.attribution_share.baseline) }}</b>{% if sci.baseline %}
(95 % CI {{ pct(sci.baseline[0]) }}-{{ pct(sci.baseline[1]) }}){% endif %}
({{ r.stylometry.attribution_rows.candidate }} and {{ r.stylometry.attribution_rows.baseline }} answers;
{{ r.stylometry.attribution_measure }}).
{% set cal = r.stylometry.attribution_calibration %}{% if cal %}The measure itself attributes
{{ cal.words }}-word pieces of
the authors' held-out writing to the right author {{ pct(cal.accuracy) }} of the time
({% for a, v in cal.authors.items() %}{{ a }} {{ v.correct }}/{{ v.snippets }}{% if v.ci95 %}, 95 % CI
{{ pct(v.ci95[0]) }}-{{ pct(v.ci95[1]) }}{% endif %}{{ "; " if not loop.last }}{% endfor %}): the most a perfect twin
scores.{% endif %}{% else %}Attribution needs a second author.{% endif %}</p>
<h2>Perplexity of the author's held-out text</h2><table>{% for k, v in r.perplexity.items() %}
<tr><td>{{ k }}</td><td class="num">{{ fmt(v) }}</td></tr>{% endfor %}</table>
<h2>RAG retrieval</h2>
<p>{% if r.rag.status == "ok" %}hit@{{ r.rag.k }} <b>{{ fmt(r.rag.hit_at_k) }}</b>, MRR@{{ r.rag.k }}
<b>{{ fmt(r.rag.mrr) }}</b> over {{ r.rag.queries }} held-out instructions (a hit: a chunk of the
document the instruction was written from).{% else %}<span class="missing">missing</span>:
{{ r.rag.reason }}{% endif %}</p>
<h2>Judge</h2>
<p>{{ r.judge.name }}: <span class="{{ 'pass' if r.judge.status == 'ok' else 'missing' }}">{{ r.judge.status }}</span>
({{ r.judge.calls }} calls, {{ r.judge.failures }} failed)
{%- if r.judge.reason %} &mdash; {{ r.judge.reason }}{% endif %}</p>
<h2>Samples</h2>
{% for s in r.samples %}<details><summary>{{ s.instruction[:140] }}</summary>
<table><tr><th>author's answer</th><td><pre>{{ s.reference }}</pre></td></tr>
{% for role in ("candidate", "baseline") %}<tr><th>{{ role }}</th><td><pre>{% set a = s[role].answer %}
{{- "(no answer: generation failed)" if a is none else (a or "(an empty answer)") }}</pre>
<small>ROUGE-L {{ fmt(s[role].rouge_l) }} &middot; topic {{ fmt(s[role].topic_similarity) }} &middot;
style Delta {{ fmt(s[role].style_distance) }} &middot; perplexity {{ fmt(s[role].perplexity) }} &middot;
grounded {{ fmt(s[role].groundedness) }} &middot;
judge {{ s[role].judge_accuracy or "-" }}/{{ s[role].judge_style or "-" }}</small>
</td></tr>{% endfor %}
<tr><th>source</th><td>{{ s.source or "" }} (retrieval rank {{ s.retrieval_rank or "-" }})</td></tr></table>
</details>{% endfor %}
<h2>Timing</h2><table>{% for k, v in r.seconds.items() %}
<tr><td>{{ k }}</td><td class="num">{{ v }} s</td></tr>{% endfor %}</table>
</body></html>
"""


def _fmt(value: Any) -> str:
    if value is None:
        return "missing"
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def _pct(value: float | None) -> str:
    return "missing" if value is None else f"{100 * value:.0f} %"


def render_html(report: dict[str, Any]) -> str:
    import jinja2

    env = jinja2.Environment(autoescape=True, undefined=jinja2.StrictUndefined)
    checks = {c["metric"]: c for c in report["gate"]["checks"]}
    return env.from_string(TEMPLATE).render(
        r=report, labels=LABELS, checks=checks, fmt=_fmt, pct=_pct, created=report.get("created_at", "")
    )


def _comet(settings: Settings, report: dict[str, Any], html: str, folder: Path) -> dict[str, Any]:
    """Log params, both metric columns, the gate and the HTML page; returns key/mode/archive path."""
    from twin_core.llm.comet import is_online, offline_archive, start_experiment

    online = is_online()
    exp = start_experiment(
        f"eval-{report['candidate']['ref'].replace('/', '-')}",
        ["evaluation", report["author_slug"], report["gate"]["decision"]],
        folder,
        project=settings.eval.comet_project,
        workspace=settings.training.comet_workspace,
    )
    exp.log_parameters(
        {
            "candidate": report["candidate"]["ref"],
            "baseline": report["baseline"]["ref"],
            "dataset_version": report["dataset_version"],
            "rows": report["rows"],
        }
    )
    for role in ("candidate", "baseline"):
        numbers = {f"{role}.{k}": v for k, v in report["metrics"][role].items() if isinstance(v, (int, float))}
        exp.log_metrics(numbers)
    rag = {f"rag.{k}": report["rag"][k] for k in ("hit_at_k", "mrr") if report["rag"].get(k) is not None}
    exp.log_metrics({**rag, "gate.passed": int(report["gate"]["passed"])})
    exp.log_html(html)
    key = exp.get_key()
    exp.end()
    archive = None if online else offline_archive(folder, key)
    return {"key": key, "mode": "online" if online else "offline", "archive": archive}


def write_report(settings: Settings, report: dict[str, Any], *, comet: bool = True) -> dict[str, Any]:
    """Store report.json + report.html (+ the Comet archive) as a new artifact version; returns locations."""
    from datetime import UTC, datetime

    from twin_core.evaluation.resume import complete, report_name

    report = {**report, "created_at": datetime.now(UTC).isoformat(timespec="seconds")}
    html = render_html(report)
    store = open_artifact_store(settings)
    name = report_name(report["author_slug"], report["candidate"]["ref"])
    files: dict[str, bytes | Path] = {}
    comet_info: dict[str, Any] = {"mode": "off"}
    with tempfile.TemporaryDirectory(prefix="twin-eval-") as tmp:
        if comet:
            try:
                comet_info = _comet(settings, report, html, Path(tmp))
            except Exception as exc:  # noqa: BLE001 - tracking is best effort; the report itself is stored
                log.warning("Comet logging failed: %s: %s", type(exc).__name__, exc)
                comet_info = {"mode": "failed", "error": f"{type(exc).__name__}: {exc}"}
            if comet_info.get("archive"):
                archive = Path(comet_info["archive"])
                files[f"comet/{archive.name}"] = archive.read_bytes()
        tracked = {k: (str(v) if isinstance(v, Path) else v) for k, v in comet_info.items() if k != "archive"}
        if comet_info.get("archive"):
            tracked["archive"] = f"comet/{Path(comet_info['archive']).name}"
        report["comet"] = tracked
        files["report.json"] = json.dumps(report, indent=2, default=str, ensure_ascii=False).encode()
        files["report.html"] = render_html(report).encode()
        meta = {
            "candidate": report["candidate"]["ref"],
            "baseline": report["baseline"]["ref"],
            "dataset_version": report["dataset_version"],
            "gate": report["gate"]["decision"],
            "failing": report["gate"]["failing"],
            "metrics": report["metrics"],
            "comet": tracked,
            "inputs_hash": report.get("inputs_hash") or None,  # twin evaluate returns this report for the same
            "complete": complete(report),  # inputs, when complete (no transient failure: resume.stored_report)
        }
        av = store.put_version(name, files, meta)
    return {
        "artifact": f"{name}/{av.version}",
        "json": store.uri(f"{name}/{av.version}/report.json"),
        "html": store.uri(f"{name}/{av.version}/report.html"),
        "comet": report["comet"],
    }
