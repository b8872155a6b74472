"""scripts/gpu_report.py turns a device run's results.jsonl into the benchmark tables and item 6's verdicts."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]

TRAIN = {"overrides": [], "ours_tokens_per_s": 24000.0, "plain_tokens_per_s": 9000.0, "ratio": 2.667,
         "ours_mfu": 0.195, "plain_mfu": 0.0731, "ours_hfu": 0.13, "plain_hfu": 0.0731,
         "first_step_s": [4.1, 5.9], "median_step_s": [1.3, 3.6], "micro_batch": 8, "grad_accum": 2,
         "gradient_checkpointing": False, "memory_estimate_gib": 41.5, "memory_budget_gib": 70.1,
         "peak_memory_gib": 38.22, "plain_peak_memory_gib": 9.5, "perplexity_trained_ours": 19000.5,
         "perplexity_trained_plain": 19500.25, "perplexity_base": 59713.0}  # fmt: skip
# TRAIN's row, as the report writes it
GPU8B_ROW = (
    "| train-gpu8b (gpu-8b as written) | 24,000.0 / 9,000.0 | 2.667 **met** | 19.50 % / 7.31 % (13.00 %) "
    "| 4.10 / 5.90 s | 1.30 / 3.60 s | 8 × 2, no recomputation | 41.5 GiB estimated of 70.1; 38.22 GiB peak "
    "| 9.50 GiB | 19000.5 / 19500.25 (59713.0) |"
)
PROFILE = {"step": "profile", "torch_profile": {
    "steps": 2, "wall_s": 2.5, "device_busy_s": 2.0,
    "top": [{"op": "aten::mm", "calls": 900, "self_cpu_ms": 80.0, "self_device_ms": 1200.4}],
    "top_kernels": [{"op": "sm90_xmma_gemm_bf16", "calls": 600, "self_cpu_ms": 0.0, "self_device_ms": 1100.0}],
}}  # fmt: skip


def _report(tmp_path: Path, lines: list[dict]) -> str:
    results = tmp_path / "results.jsonl"
    results.write_text("".join(json.dumps(line) + "\n" for line in lines))
    cmd = [sys.executable, str(REPO / "scripts" / "gpu_report.py"), str(results), "--device", "one H100"]
    return subprocess.run(cmd, capture_output=True, text=True, check=True).stdout


def test_the_report_gives_each_run_its_row_and_item_6_its_verdicts(tmp_path: Path) -> None:
    bf16 = {**TRAIN, "step": "train-bf16", "overrides": ["quantization=null"], "ours_mfu": 0.212,
            "first_step_s": [6.5, 5.8]}  # fmt: skip
    llm = {"step": "llm-bf16", "device": "cuda", "gpu": "NVIDIA H100", "dtype": "bfloat16",
           "one_at_a_time_tokens_per_s": 410.0, "batch_job_tokens_per_s": 5120.5, "speedup": 12.49,
           "same_text": "31/32", "peak_gpu_gib": 0.81}  # fmt: skip
    out = _report(tmp_path, [{**TRAIN, "step": "train-gpu8b"}, bf16, llm, PROFILE])

    assert out.startswith("Device: one H100; run: not given.\n")
    assert GPU8B_ROW in out
    assert "| train-bf16 (quantization=null) |" in out
    assert "- Ratio ≥ 1.5: **met** (best 2.667, train-gpu8b)." in out
    assert "- MFU ≥ 20 %: **met** (best 21.20 %)." in out  # the best run counts
    # every run counts for the first step: the bf16 run's 6.5 s against 5.8 s misses it
    assert "- Ours' first step no dearer than plain TRL's: **missed** (4.10 vs 5.90 s; 6.50 vs 5.80 s)." in out
    assert "| llm-bf16 | NVIDIA H100, bfloat16 | 410.0 | 5,120.5 | 12.49× | 31/32 | 0.81 GiB |" in out
    assert "| steps 3-4 | 2 | 2.5 | 2.0 (80.00 %) | `aten::mm` 1,200 ms | `sm90_xmma_gemm_bf16` 1,100 ms |" in out
    assert "| step 1 |" not in out  # no first-step window in this result


def test_a_run_without_training_results_says_so(tmp_path: Path) -> None:
    out = _report(tmp_path, [{"step": "train-gpu8b", "error": "ours failed"}])
    assert "Lines without their figures (see logs.tar.gz): train-gpu8b." in out
    assert "- Item 6: no training run returned a result." in out
    assert "Item 7" not in out and "torch.profiler" not in out
    missing = subprocess.run([sys.executable, str(REPO / "scripts" / "gpu_report.py"), str(tmp_path / "none.jsonl")],
                             capture_output=True, text=True)  # fmt: skip
    assert missing.returncode == 1 and "none.jsonl: no such file" in missing.stderr


BENCH_REPORT = """
import argparse, sys
sys.path.insert(0, "benchmarks")
import training
metrics = {"tokens_per_s": 24000.0, "first_loss": 11.1, "last_loss": 10.0, "perplexity_base": 59713.0,
           "perplexity_trained": 19000.5, "first_step_s": 4.1, "median_step_s": 1.3, "micro_batch": 8,
           "grad_accum": 2, "gradient_checkpointing": False, "memory_estimate_gib": 41.5,
           "memory_budget_gib": 70.1, "peak_memory_gib": 38.22}
ours = {"train_rows": 104, "seconds": 50.0, "metrics": metrics}
plain = {"tokens_per_s": 9000.0, "perplexity": 19500.25, "peak_memory_gib": 9.5, "gradient_checkpointing": True,
         "first_step_s": 5.9, "median_step_s": 3.6}
args = argparse.Namespace(device="gpu", shape="1b", peak_tflops=790.0, set=[], steps=8, threads=2)
training.report(args, [(ours, 1000.0, plain, 900.0)])
"""


def test_the_report_reads_what_the_training_benchmark_prints(tmp_path: Path) -> None:
    """benchmarks/training.py's own JSON, from its report(), through the report: the field names agree."""
    printed = subprocess.run([sys.executable, "-c", BENCH_REPORT], cwd=REPO, capture_output=True, text=True, check=True)
    line = json.loads(printed.stdout.splitlines()[-1])
    out = _report(tmp_path, [{"step": "train-gpu8b", **line}])
    assert GPU8B_ROW in out
