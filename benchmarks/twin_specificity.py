"""Twin specificity (issue 21): does each twin write like *its* author, not like the genre?

Drives the project's own `twin` commands on a fresh TWIN_HOME with the two sample authors (Ada
Quillfeather and Oskar Brennmoor): import both backups, features, one dataset build per author, one SFT
per author, each twin promoted to its author's production model, then `twin evaluate` per author against
the base model. The evaluation scores the author's held-out documents (about 1 in 6, by document) under
the own twin, the base model and the other author's production twin, and attributes the generated
answers to an author (naive Bayes over shared words and punctuation), next to that measure's own
accuracy on the author's held-out writing. Prints the table of docs/benchmarks.md "Twin specificity".

    .venv/bin/python benchmarks/twin_specificity.py [--home /tmp/voice-spec] [--profile cpu-small]

Resumable: every step's JSON line is kept in HOME/bench/<step>.json and a step whose file exists is
skipped, so a run stopped during training continues where it was (`twin train sft --resume`).
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
# The console script where the project is installed; on a lent GPU the source is only on PYTHONPATH.
TWIN = (
    [str(ROOT / ".venv" / "bin" / "twin")]
    if (ROOT / ".venv" / "bin" / "twin").is_file()
    else [sys.executable, "-m", "twin_core.cli.main"]
)
SAMPLE = ROOT / "src" / "twin_core" / "demo" / "sample"
BACKUPS = [SAMPLE, SAMPLE / "second_author"]
# cpu-small trains on 384 tokens: the served prompt's context budget must leave room for the answer.
# Set for every step, so datasets (train rows) and evaluation (served prompts) render the same prompt.
CONTEXT_TOKENS = "64"
GOALS = {"own_vs_base": 0.80, "own_vs_other": 0.90, "attribution": 0.80}
CONTRAST = "other_author"  # the default preference pairs: the other author's nearest passage as the rejected answer


def _env(home: Path, side_by_side: int = 1) -> dict[str, str]:
    env = {**os.environ, "TWIN_HOME": str(home), "TWIN_RAG_CONTEXT_TOKENS": CONTEXT_TOKENS}
    if side_by_side > 1 and "TWIN_LLM_THREADS" not in os.environ:
        # steps side by side share the cores: two trainings of 2 threads each on 2 cores ran over 2x slower
        env["TWIN_LLM_THREADS"] = str(max(1, (os.cpu_count() or 1) // side_by_side))
    if (home / "bench" / "evaluation.yaml").exists():
        env["TWIN_EVAL_CONFIG"] = str(home / "bench" / "evaluation.yaml")
    return env


def eval_config(home: Path, max_new_tokens: int, batch_size: int) -> None:
    """configs/evaluation.yaml with shorter answers in bigger batches (generation is most of the cost)."""
    import yaml

    cfg = yaml.safe_load((ROOT / "configs" / "evaluation.yaml").read_text())
    cfg["samples"].update(max_new_tokens=max_new_tokens, batch_size=batch_size)
    (home / "bench").mkdir(parents=True, exist_ok=True)
    (home / "bench" / "evaluation.yaml").write_text(yaml.safe_dump(cfg, sort_keys=False))


def twin(home: Path, name: str, *args: str) -> dict[str, Any]:
    """Run one `twin` command (or reuse its saved JSON line); stderr goes to HOME/bench/<name>.log."""
    return twins(home, [(name, list(args))])[name]


def twins(home: Path, steps: list[tuple[str, list[str]]]) -> dict[str, dict[str, Any]]:
    """Run `twin` commands side by side; a step whose JSON line is saved is skipped."""
    bench = home / "bench"
    bench.mkdir(parents=True, exist_ok=True)
    running: dict[str, tuple[subprocess.Popen, float]] = {}
    todo: list[tuple[str, list[str]]] = []
    for name, args in steps:
        if (bench / f"{name}.json").exists():
            print(f"[skip] {name} (done: {bench / name}.json)", file=sys.stderr)
        else:
            todo.append((name, args))
    for name, args in todo:
        print(f"[run ] twin {' '.join(args)}", file=sys.stderr)
        # files, not pipes: a step outlives this script when it is stopped (then resumed by hand or re-run)
        with open(bench / f"{name}.stdout", "w") as out, open(bench / f"{name}.log", "w") as log:
            proc = subprocess.Popen([*TWIN, *args], env=_env(home, len(todo)), stdout=out, stderr=log)
        running[name] = (proc, time.perf_counter())
    for name, (proc, started) in running.items():
        proc.wait()
        lines = [ln for ln in (bench / f"{name}.stdout").read_text().splitlines() if ln.strip()]
        result = json.loads(lines[-1]) if lines else {}
        if proc.returncode != 0:
            raise SystemExit(f"{name} failed ({proc.returncode}): {result} (log: {bench / name}.log)")
        result["_seconds"] = round(time.perf_counter() - started, 1)
        (bench / f"{name}.json").write_text(json.dumps(result, indent=2))
        print(f"[done] {name} in {result['_seconds']} s", file=sys.stderr)
    return {name: json.loads((bench / f"{name}.json").read_text()) for name, _ in steps}


def prepare(home: Path, dpo_pairs: int = 0, pair_kinds: str = CONTRAST) -> dict[str, dict[str, str]]:
    """Import both authors, features, the dataset builds per author: {author slug: {kind: version}}.
    ``dpo_pairs`` > 0 also builds preference pairs of ``pair_kinds`` (default: author contrast, the other
    author's nearest passage, no model call; ``model``: the base model's length-matched answer). Builds
    run here, so a GPU machine without Great Expectations only trains."""
    for i, backup in enumerate(BACKUPS):
        twin(home, f"import-{i}", "warehouse", "import", str(backup))
    authors = twin(home, "authors", "warehouse", "authors")["authors"]
    twin(home, "features", "features", "run")
    datasets: dict[str, dict[str, str]] = {}
    for author in authors:
        slug = _author_slug(author)
        built = twin(home, f"datasets-{slug}", "datasets", "build", "--author", author, "--max-rejected", "0")
        datasets[slug] = {"instruct": [v for v in _versions(built) if v.startswith(f"instruct/{slug}/")][-1]}
        if dpo_pairs:
            built = twin(home, f"pairs{_tag(pair_kinds)}-{slug}", "datasets", "build", "--author", author,
                         "--max-rejected", str(dpo_pairs), "--pair-kinds", pair_kinds)  # fmt: skip
            datasets[slug]["preference"] = [v for v in _versions(built) if v.startswith(f"preference/{slug}/")][-1]
    return datasets


def build(
    home: Path, profile: str, max_steps: int, max_rows: int, dpo_pairs: int = 0, pair_kinds: str = CONTRAST
) -> dict[str, dict[str, Any]]:
    """Every step in order (both authors' training side by side); returns each author's evaluation line.
    ``dpo_pairs`` > 0: each SFT twin then learns from that many author-contrast pairs (DPO from the SFT
    twin, the other author's nearest passage as the rejected answer); the DPO twins are evaluated."""
    datasets = prepare(home, dpo_pairs, pair_kinds)
    common = ["--profile", profile, "--max-steps", str(max_steps), "--resume"]
    sft = [(f"sft-{slug}", ["train", "sft", "--dataset", d["instruct"], *common]) for slug, d in datasets.items()]
    models = {r["model"]: r for r in twins(home, sft).values()}
    if dpo_pairs:
        pairs = {ref: datasets[_slug(ref)]["preference"] for ref in models}
        runs = [
            (f"dpo{_tag(pair_kinds)}-{_slug(r)}", ["train", "dpo", "--dataset", p, "--from", r, *common])
            for r, p in pairs.items()
        ]
        models = {r["model"]: r for r in twins(home, runs).values()}
    for ref in models:
        twin(home, f"promote-{_step(ref)}", "registry", "promote", ref, "--stage", "production",
             "--reason", "twin specificity benchmark")  # fmt: skip
    evals = [
        (f"evaluate-{_step(ref)}", ["evaluate", "--model", ref, "--baseline", "base", "--no-judge",
                                    "--max-rows", str(max_rows), "--min-rows", str(min(max_rows, 10))])
        for ref in models
    ]  # fmt: skip
    # one at a time: each evaluation opens the embedded vector store, which takes one process
    return {name: twin(home, name, *args) for name, args in evals}


def _tag(pair_kinds: str) -> str:
    """Step-name suffix of a pair kind other than the default, so each kind's pairs and DPO are steps of their own."""
    return "" if pair_kinds == CONTRAST else "-" + pair_kinds.replace(",", "+")


def _author_slug(author: str) -> str:
    return author.lower().replace(" ", "-")


def _step(ref: str) -> str:
    return ref.replace("/", "-")


def _slug(ref: str) -> str:
    return ref.split("/")[0]


def _versions(built: dict[str, Any]) -> list[str]:
    """Dataset version ids named anywhere in `twin datasets build`'s result line."""
    found: list[str] = []

    def walk(v: Any) -> None:
        if isinstance(v, str) and v.startswith(("instruct/", "preference/")):
            found.append(v)
        elif isinstance(v, dict):
            for x in v.values():
                walk(x)
        elif isinstance(v, list):
            for x in v:
                walk(x)

    walk(built)
    return sorted(set(found))


def figures(result: dict[str, Any]) -> dict[str, Any]:
    """The three goal figures of one author's evaluation."""
    ppl = result["perplexity"]
    own, base = ppl["candidate"], ppl.get("base")
    others = {k.split(":", 1)[1]: v for k, v in ppl.items() if k.startswith("twin:")}
    other_slug, other = next(iter(others.items()), (None, None))
    share = (result["stylometry"].get("attribution_share") or {}).get("candidate")
    base_share = (result["stylometry"].get("attribution_share") or {}).get("baseline")
    calibration = result["stylometry"].get("attribution_calibration") or {}
    own_cal = (calibration.get("authors") or {}).get(result["model"].split("/")[0]) or {}
    return {
        "author": result["author"], "model": result["model"], "rows": result["rows"],
        "ppl_base": base, "ppl_own": own, "ppl_other": other, "other_twin": other_slug,
        "own_vs_base": own / base if own and base else None,
        "own_vs_other": own / other if own and other else None,
        "attribution": share, "attribution_base": base_share,
        "attribution_ceiling": own_cal.get("accuracy"), "ceiling_words": calibration.get("words"),
    }  # fmt: skip


def samples(home: Path, result: dict[str, Any], n: int = 2) -> list[dict[str, Any]]:
    """The shortest held-out questions with both answers, from the stored evaluation report."""
    slug, version = result["model"].split("/")
    paths = sorted(glob.glob(str(home / "**" / "evaluations" / slug / version / "**" / "report.json"), recursive=True))
    if not paths:
        return []
    report = json.loads(Path(paths[-1]).read_text())
    rows = [s for s in report["samples"] if s["candidate"]["answer"] and s["baseline"]["answer"]]
    rows.sort(key=lambda s: len(s["instruction"]))
    return [
        {"instruction": s["instruction"], "base": s["baseline"]["answer"], "twin": s["candidate"]["answer"]}
        for s in rows[:n]
    ]


def _fmt(v: float | None, pct: bool = False) -> str:
    if v is None:
        return "missing"
    return f"{v:.0%}" if pct else f"{v:.3g}"


def table(rows: list[dict[str, Any]]) -> str:
    head = (
        "| author (held-out rows) | base ppl | own twin ppl | other twin ppl | own / base (≤ 0.80) "
        "| own / other (≤ 0.90) | answers attributed to the author: twin (base) (≥ 80 %) "
        "| the measure on the author's held-out writing (words) |\n"
        "|---|---|---|---|---|---|---|---|"
    )
    body = [
        f"| {r['author']} ({r['rows']}) | {_fmt(r['ppl_base'])} | {_fmt(r['ppl_own'])} | {_fmt(r['ppl_other'])} "
        f"| **{_fmt(r['own_vs_base'])}** | **{_fmt(r['own_vs_other'])}** "
        f"| **{_fmt(r['attribution'], True)}** ({_fmt(r['attribution_base'], True)}) "
        f"| {_fmt(r['attribution_ceiling'], True)} ({r['ceiling_words']}) |"
        for r in rows
    ]
    return "\n".join([head, *body])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--home", type=Path, default=Path("/tmp/voice-spec"), help="TWIN_HOME (fresh or resumed)")
    default_profile = "cpu-small" if (ROOT / "configs/training/cpu-small.yaml").exists() else "cpu-tiny"
    parser.add_argument("--profile", default=default_profile, help="training profile (default %(default)s)")
    parser.add_argument("--max-steps", type=int, default=0, help="cap SFT steps (0 = the profile's)")
    parser.add_argument("--max-rows", type=int, default=20, help="held-out rows evaluated per author (0 = all)")
    parser.add_argument("--max-new-tokens", type=int, default=48, help="answer length in the evaluation")
    parser.add_argument(
        "--dpo-pairs", type=int, default=0, help="then DPO on that many author-contrast pairs per author (0 = SFT only)"
    )
    parser.add_argument(
        "--pair-kinds", default=CONTRAST, help="with --dpo-pairs: other_author (default), model, or both (comma)"
    )
    parser.add_argument(
        "--prepare-only", action="store_true", help="stop after the dataset builds (then train elsewhere: a GPU)"
    )
    args = parser.parse_args()
    eval_config(args.home, args.max_new_tokens, batch_size=10)
    if args.prepare_only:
        print(json.dumps(prepare(args.home, args.dpo_pairs, args.pair_kinds)))
        return
    results = build(args.home, args.profile, args.max_steps, args.max_rows, args.dpo_pairs, args.pair_kinds)
    rows = [figures(r) for r in results.values()]
    summary = {"profile": args.profile, "dpo_pairs": args.dpo_pairs, "pair_kinds": args.pair_kinds,
               "home": str(args.home), "goals": GOALS,
               "authors": rows, "samples": {r["author"]: samples(args.home, r) for r in results.values()}}  # fmt: skip
    (args.home / "bench" / "summary.json").write_text(json.dumps(summary, indent=2, ensure_ascii=False))
    print(table(rows), file=sys.stderr)
    print(json.dumps(summary, ensure_ascii=False))


if __name__ == "__main__":
    main()
