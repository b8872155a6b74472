"""Issue 22's device results as the Markdown tables of docs/benchmarks.md, with each goal's verdict.

    python3 scripts/gpu_report.py RESULTS.jsonl [--device "one NVIDIA H100 …"] [--when "2026-12-08 10:00 UTC"]

RESULTS.jsonl is what `scripts/gpu_bench.sh` leaves in $OUT: one JSON line per step, named by its ``step``
field (``train-*`` ours vs plain TRL, ``llm-*`` the local LLM, ``profile`` ours under torch.profiler). A step
that failed or was skipped has no line and no row. Goals (item 6): ours ≥ 1.5 × plain TRL's tokens/s, MFU ≥ 20 %
for the 1.07 B shape, ours' first step no dearer than plain TRL's.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

RATIO_GOAL, MFU_GOAL = 1.5, 0.20  # item 6


def verdict(ok: bool | None) -> str:
    return "no figure" if ok is None else ("**met**" if ok else "**missed**")


def _pct(x: float | None) -> str:
    return "—" if x is None else f"{100 * x:.2f} %"


def _num(x: float | None, digits: int = 1, unit: str = "") -> str:
    return "—" if x is None else f"{x:,.{digits}f}{unit}"


def _plan(r: dict[str, Any]) -> str:
    if "micro_batch" not in r:
        return "the profile's own split"
    recompute = "recomputation on" if r.get("gradient_checkpointing") else "no recomputation"
    return f"{r['micro_batch']} × {r['grad_accum']}, {recompute}"


def _memory(r: dict[str, Any]) -> str:
    estimate = r.get("memory_estimate_gib")
    measured = f"{_num(r.get('peak_memory_gib'), 2, ' GiB')} peak"
    return measured if estimate is None else f"{estimate} GiB estimated of {r.get('memory_budget_gib')}; {measured}"


def training_rows(steps: list[dict[str, Any]]) -> list[str]:
    """One row per train-* step: speed, utilisation, first step, the plan and memory, perplexity."""
    out = [
        f"| run | ours / plain TRL tokens/s | ratio (goal ≥ {RATIO_GOAL}) | MFU ours / plain (HFU ours) "
        "| first step ours / plain | median step ours / plain | ours' plan | ours' memory | plain peak "
        "| held-out ppl ours / plain (base) |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in steps:
        first, median = r.get("first_step_s") or [None, None], r.get("median_step_s") or [None, None]
        out.append(
            f"| {r['step']} ({' '.join(r.get('overrides') or []) or 'gpu-8b as written'}) "
            f"| {_num(r['ours_tokens_per_s'])} / {_num(r['plain_tokens_per_s'])} "
            f"| {r['ratio']} {verdict(r['ratio'] >= RATIO_GOAL)} "
            f"| {_pct(r.get('ours_mfu'))} / {_pct(r.get('plain_mfu'))} ({_pct(r.get('ours_hfu'))}) "
            f"| {_num(first[0], 2)} / {_num(first[1], 2)} s | {_num(median[0], 2)} / {_num(median[1], 2)} s "
            f"| {_plan(r)} | {_memory(r)} | {_num(r.get('plain_peak_memory_gib'), 2, ' GiB')} "
            f"| {r['perplexity_trained_ours']} / {r['perplexity_trained_plain']} ({r['perplexity_base']}) |"
        )
    return out


def training_verdicts(steps: list[dict[str, Any]]) -> list[str]:
    """Item 6's three goals over the runs: the best run for speed and MFU, every run for the first step."""
    if not steps:
        return ["- Item 6: no training run returned a result."]
    best = max(steps, key=lambda r: r["ratio"])
    mfu = max((r.get("ours_mfu") for r in steps if r.get("ours_mfu") is not None), default=None)
    firsts = [r["first_step_s"] for r in steps if r.get("first_step_s") and None not in r["first_step_s"]]
    first_ok = all(o <= p for o, p in firsts) if firsts else None
    return [
        f"- Ratio ≥ {RATIO_GOAL}: {verdict(best['ratio'] >= RATIO_GOAL)} (best {best['ratio']}, {best['step']}).",
        f"- MFU ≥ {100 * MFU_GOAL:.0f} %: {verdict(None if mfu is None else mfu >= MFU_GOAL)} (best {_pct(mfu)}).",
        f"- Ours' first step no dearer than plain TRL's: {verdict(first_ok)} "
        f"({'; '.join(f'{o:.2f} vs {p:.2f} s' for o, p in firsts) or 'no figure'}).",
    ]


def llm_rows(steps: list[dict[str, Any]]) -> list[str]:
    out = [
        "| run | device, dtype | one at a time tokens/s | batch job tokens/s | speed-up | same text | peak GPU |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in steps:
        out.append(
            f"| {r['step']} | {r.get('gpu') or r['device']}, {r['dtype']} | {_num(r['one_at_a_time_tokens_per_s'])} "
            f"| {_num(r['batch_job_tokens_per_s'])} | {r['speedup']}× | {r['same_text']} "
            f"| {_num(r.get('peak_gpu_gib'), 2, ' GiB')} |"
        )
    return out


def profile_rows(step: dict[str, Any]) -> list[str]:
    """Both windows: wall vs the GPU's busy seconds, and the operators that took the most device time."""
    out = [
        "| window | steps | wall s | GPU busy s (share) | top operators by own time | top kernels |",
        "|---|---|---|---|---|---|",
    ]
    for name, key in (("step 1", "torch_profile_first_step"), ("steps 3-4", "torch_profile")):
        w = step.get(key)
        if not w:
            continue
        busy = w.get("device_busy_s")
        share = f"{busy} ({_pct(busy / w['wall_s'])})" if busy and w["wall_s"] else "—"
        unit = "self_device_ms" if busy else "self_cpu_ms"
        top = ", ".join(f"`{t['op'][:48]}` {t[unit]:,.0f} ms" for t in w["top"][:5])
        kernels = ", ".join(f"`{t['op'][:48]}` {t['self_device_ms']:,.0f} ms" for t in w.get("top_kernels", [])[:3])
        out.append(f"| {name} | {w['steps']} | {w['wall_s']} | {share} | {top} | {kernels or '—'} |")
    return out


def report(lines: list[dict[str, Any]], device: str = "", when: str = "") -> str:
    train = [r for r in lines if r["step"].startswith("train-") and "ratio" in r]
    llm = [r for r in lines if r["step"].startswith("llm-") and "speedup" in r]
    prof = next((r for r in lines if r["step"] == "profile" and "torch_profile" in r), None)
    odd = [r["step"] for r in lines if r not in train + llm and r is not prof]  # a line without its figures
    parts = [f"Device: {device or 'not given'}; run: {when or 'not given'}."]
    parts += [f"Lines without their figures (see logs.tar.gz): {', '.join(odd)}."] if odd else []
    parts += ["", "Item 6, training:", ""]
    parts += training_rows(train) + [""] + training_verdicts(train)
    if llm:
        parts += ["", "Item 7, the local LLM:", ""] + llm_rows(llm)
    if prof:
        parts += ["", "Where ours' step time goes (torch.profiler, tokens/s under the profiler are no result):", ""]
        parts += profile_rows(prof)
    return "\n".join(parts) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("results", type=Path, help="results.jsonl from scripts/gpu_bench.sh")
    parser.add_argument("--device", default="", help="the machine, as the device reply names it")
    parser.add_argument("--when", default="", help="when it ran")
    args = parser.parse_args()
    if not args.results.is_file():
        raise SystemExit(f"{args.results}: no such file (scripts/gpu_bench.sh writes $OUT/results.jsonl)")
    lines = [json.loads(line) for line in args.results.read_text().splitlines() if line.strip()]
    sys.stdout.write(report(lines, args.device, args.when))


if __name__ == "__main__":
    main()
