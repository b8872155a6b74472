"""`twin evaluate --model REF [--baseline production|base|REF]`: evaluate a model version and gate it."""

from __future__ import annotations

from typing import Any

import typer

from twin_core.cli.protocol import step


def build_tools(settings: Any, *, judge: bool = True, show_progress: bool = True) -> Any:
    """Evaluation's tools from the layers above it: the embedder, the feature-store search, the judge."""
    from twin_core.demo.evaluation import retriever
    from twin_core.evaluation.config import load_eval_config
    from twin_core.evaluation.judge import Judge, open_judge
    from twin_core.evaluation.run import Tools
    from twin_core.features.embedding_model import load_embedder
    from twin_core.progress import progress, silent

    cfg = load_eval_config(settings)
    embedder = load_embedder(settings)
    retrieve = retriever(settings)
    return Tools(
        embed=embedder.encode,
        retrieve=retrieve,
        judge=open_judge(settings, cfg.judge_max_new_tokens, cfg.judge_max_failures) if judge else Judge(None, "off"),
        progress=progress if show_progress else silent,
    )


def _print_gate(result: dict[str, Any]) -> None:
    from rich.console import Console
    from rich.table import Table

    gate = result["gate"]
    table = Table("metric", "candidate", "baseline", "rule", "outcome", title=f"gate: {gate['decision'].upper()}")
    for c in gate["checks"]:
        fmt = lambda v: "missing" if v is None else f"{v:.4g}"  # noqa: E731
        table.add_row(c["metric"], fmt(c["candidate"]), fmt(c["baseline"]), c["rule"], c["outcome"])
    Console(stderr=True).print(table)


@step("evaluate")
def app(
    model: str = typer.Option(..., "--model", help="Model version to evaluate: <author_slug>/vNNNN."),
    baseline: str = typer.Option(
        "production", "--baseline", help="production (base model when none), base, or a version <author_slug>/vNNNN."
    ),
    judge: bool = typer.Option(True, "--judge/--no-judge", help="Judge scores (TWIN_EVAL_JUDGE_BASE_URL or local)."),
    max_rows: int = typer.Option(
        None, "--max-rows", help="Held-out rows evaluated (default: configs/evaluation.yaml)."
    ),
    require_pass: bool = typer.Option(False, "--require-pass", help="Exit 3 when the gate fails (for pipelines)."),
) -> dict:
    """Evaluate a model version against a baseline on its dataset's held-out split, then gate it.

    The report (JSON + HTML) goes to the artifact store and to Comet; the gate decision, the failing
    metrics and every number are in the result line.
    """
    import dataclasses

    from twin_core.evaluation.config import load_eval_config
    from twin_core.evaluation.report import write_report
    from twin_core.evaluation.run import check_inputs, evaluate
    from twin_core.settings import get_settings

    settings = get_settings()
    cfg = load_eval_config(settings)
    if max_rows is not None:
        cfg = dataclasses.replace(cfg, max_rows=max_rows)
    check_inputs(settings, model, cfg)  # unknown version, empty test split -> exit 3 before any model loads
    result = evaluate(settings, model, baseline, tools=build_tools(settings, judge=judge), config=cfg)
    report = result.as_dict()
    stored = write_report(settings, report)
    _print_gate(report)
    out: dict[str, Any] = {
        "model": result.candidate.ref,
        "baseline": result.baseline.ref,
        "baseline_note": result.baseline.note or None,
        "author": result.author,
        "dataset_version": result.dataset_version,
        "rows": result.rows,
        "gate": report["gate"]["decision"],
        "passed": report["gate"]["passed"],
        "failing": report["gate"]["failing"],
        "missing": report["gate"]["missing"],
        "metrics": report["metrics"],
        "rag": report["rag"],
        "judge": {k: report["judge"][k] for k in ("name", "status", "calls", "failures", "reason")},
        "report": stored,
    }
    if require_pass and not report["gate"]["passed"]:
        out["status"] = "gate_failed"
        out["exit_code"] = 3
    return out
