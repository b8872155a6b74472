"""`twin evaluate --model REF [--baseline production|base|REF]`: evaluate a model version and gate it."""

from __future__ import annotations

from typing import Any

import typer

from twin_core.cli.protocol import step

# what the result line keeps of each gate check: its sample, its interval(s), the outcome and why
GATE_CHECK_KEYS = ("outcome", "rows", "diff", "low", "high", "candidate_low", "candidate_high", "reason")


def _print_gate(result: dict[str, Any]) -> None:
    from rich.console import Console
    from rich.table import Table

    gate = result["gate"]
    title = (
        f"gate: {gate['decision'].upper()} ({gate['confidence']:.0%} bootstrap intervals of paired differences, "
        f"at least {gate.get('min_rows', 2)} paired rows per metric)"
    )
    table = Table("metric", "candidate", "baseline", "rows", "diff [interval]", "rule", "outcome", title=title)
    fmt = lambda v: "missing" if v is None else f"{v:.4g}"  # noqa: E731
    for c in gate["checks"]:
        ci = "" if c["diff"] is None else f"{fmt(c['diff'])} [{fmt(c['low'])}, {fmt(c['high'])}]"
        cand = fmt(c["candidate"])
        if c.get("candidate_low") is not None:  # a min / max rule: the interval of the candidate's mean
            cand += f" [{fmt(c['candidate_low'])}, {fmt(c['candidate_high'])}]"
        row = (c["metric"], cand, fmt(c["baseline"]), str(c["rows"]), ci, c["rule"], c["outcome"])
        table.add_row(*row)
    Console(stderr=True).print(table)


def attribution_summary(stylometry: dict[str, Any]) -> str | None:
    """One log line: who the answers read as, next to the measure's own accuracy (None with one author)."""
    share, rows, cal = (stylometry.get(k) for k in ("attribution_share", "attribution_rows", "attribution_calibration"))
    if not share:
        return None
    pct = lambda v: "missing" if v is None else f"{v:.0%}"  # noqa: E731
    ci = stylometry.get("attribution_ci95") or {}
    within = lambda role: f" (95 % CI {pct(ci[role][0])}-{pct(ci[role][1])})" if ci.get(role) else ""  # noqa: E731
    line = ", ".join(f"{role} {pct(share[role])} of {rows[role]}{within(role)}" for role in ("candidate", "baseline"))
    if cal:
        each = ", ".join(f"{a} {v['correct']}/{v['snippets']}" for a, v in cal["authors"].items())
        line += f"; the measure on held-out writing at {cal['words']} words: {pct(cal['accuracy'])} ({each})"
    return f"answers attributed to the author: {line}"


def _result_line(report: dict[str, Any], stored: dict[str, Any]) -> dict[str, Any]:
    gate = report["gate"]
    return {
        "model": report["candidate"]["ref"],
        "baseline": report["baseline"]["ref"],
        "baseline_note": report["baseline"]["note"] or None,
        "author": report["author"],
        "dataset_version": report["dataset_version"],
        "rows": report["rows"],
        "gate_checks": {c["metric"]: {k: c.get(k) for k in GATE_CHECK_KEYS} for c in gate["checks"]},
        "gate": gate["decision"],
        "passed": gate["passed"],
        "failing": gate["failing"],
        "missing": gate["missing"],
        "metrics": report["metrics"],
        "perplexity": report["perplexity"],
        "stylometry": report["stylometry"],
        "rag": report["rag"],
        "judge": {k: report["judge"].get(k) for k in ("name", "status", "calls", "failures", "unreachable", "reason")},
        "report": stored,
    }


def _check_refs(model: str, baseline: str) -> None:
    """Malformed refs, named by their option, before any store opens (registry.parse_ref names neither)."""
    from twin_core.errors import InputError
    from twin_core.stores.registry import parse_ref

    checks = [("--model", model, "")]
    if (baseline or "production").strip() not in ("production", "base"):
        checks.append(("--baseline", baseline, "production, base or "))
    for option, ref, other in checks:
        try:
            parse_ref(ref)
        except InputError:
            raise InputError(
                f"{option} {ref!r}: expected {other}a model version <author_slug>/vNNNN, e.g. paul-iusztin/v0001"
            ) from None


def _check_versions(settings: Any, model: str, baseline: str) -> None:
    """Unknown versions named by their option, with the author's versions; a baseline that is the candidate
    itself or another author's version is no comparison: exit 3, before any model loads."""
    from twin_core.cli.versions import known_version
    from twin_core.errors import InputError
    from twin_core.stores.registry import open_registry

    registry = open_registry(settings)
    candidate = known_version(registry, model, "--model")
    spec = (baseline or "production").strip()
    if spec in ("production", "base"):
        return
    other = known_version(registry, spec, "--baseline")
    if other.ref == candidate.ref:
        raise InputError(f"--baseline {spec!r} is the candidate itself: compare it with production, base or another "
                         f"version of {candidate.author_slug}")  # fmt: skip
    if other.author_slug != candidate.author_slug:
        raise InputError(
            f"--baseline {spec!r} is a model of {other.author}, the candidate {candidate.ref} one of "
            f"{candidate.author}: the gate compares two models of the same author on that author's held-out rows"
        )


@step("evaluate")
def app(
    model: str = typer.Option(..., "--model", help="Model version to evaluate: <author_slug>/vNNNN."),
    baseline: str = typer.Option(
        "production", "--baseline", help="production (base model when none), base, or a version <author_slug>/vNNNN."
    ),
    judge: bool = typer.Option(True, "--judge/--no-judge", help="Judge scores (TWIN_EVAL_JUDGE_BASE_URL or local)."),
    max_rows: int = typer.Option(
        None, "--max-rows", min=0, help="Held-out rows evaluated, 0 = all (default: configs/evaluation.yaml)."
    ),
    min_rows: int = typer.Option(
        None,
        "--min-rows",
        min=1,
        help="Fewest held-out rows (and paired rows per metric) to decide on, at least 1; --max-rows may not be "
        "below it (default: configs/evaluation.yaml, 20).",
    ),
    require_pass: bool = typer.Option(False, "--require-pass", help="Exit 3 when the gate fails (for pipelines)."),
    force: bool = typer.Option(
        False, "--force", help="Evaluate again, even when a complete report of the very same inputs is stored."
    ),
) -> dict:
    """Evaluate a model version against a baseline on its dataset's held-out split, then gate it.

    The report (JSON + HTML) goes to the artifact store and to Comet; the gate decision, the failing
    metrics and every number are in the result line. The same inputs again return the stored report
    (`reused`: true; --force evaluates again); a killed run re-run measures only the models it had not finished.

    Example: twin evaluate --model ada-quillfeather/v0002 --baseline production --require-pass
    """
    _check_refs(model, baseline)
    from twin_core.evaluation.config import load_eval_config
    from twin_core.evaluation.judge import check_judge_settings
    from twin_core.evaluation.resume import evaluate_once
    from twin_core.evaluation.run import check_inputs
    from twin_core.evaluation.tools import build_tools
    from twin_core.settings import get_settings

    settings = get_settings()
    cfg = load_eval_config(settings).with_options(max_rows=max_rows, min_rows=min_rows)  # bad sizes: exit 2/3
    if judge:
        check_judge_settings(settings)  # a malformed judge URL: exit 2 naming the variable, no model loaded
    _check_versions(settings, model, baseline)  # unknown or unfit versions, named by their option: exit 3
    p = check_inputs(settings, model, baseline, cfg)  # too few held-out rows: exit 3, no model loaded
    report, stored, reused = evaluate_once(settings, p, build_tools(settings, judge=judge), force=force)
    _print_gate(report)
    summary = attribution_summary(report["stylometry"])
    if summary:
        typer.echo(summary, err=True)
    out = {**_result_line(report, stored), "reused": reused}
    if require_pass and not report["gate"]["passed"]:
        out["status"] = "gate_failed"
        out["exit_code"] = 3
    return out
