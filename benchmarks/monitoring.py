"""Drift-check benchmark: `run_drift_check` over a window of 10k logged requests (goal: <= 30 s).

    .venv/bin/python benchmarks/monitoring.py [--rows 10000] [--reference-rows 2000] [--profile]

A fresh embedded TWIN_HOME gets an instruct dataset (the training reference), 10k synthetic requests in
the previous hour (the operations reference) and 10k shifted requests in the checked hour. Timed: the
check itself (read the log, Evidently descriptors and drift metrics, the embedding sample, the HTML +
JSON reports) in wall time and in CPU time (the machine is shared: wall time depends on the load, printed
too), then the same check again (the training reference's embeddings are cached by then). The embedding
model is loaded before the clock starts (a pod loads it once per run, measured apart). Prints one JSON
line at the end.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

# benchmarks/datasets.py would shadow Hugging Face `datasets` (sentence-transformers imports it)
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("TWIN_PROGRESS", "0")


def _cpu() -> float:
    """CPU seconds of this process (all threads): what the check costs, whatever else shares the machine."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=10_000, help="requests in the checked window")
    parser.add_argument("--reference-rows", type=int, default=2000, help="instructions in the dataset")
    parser.add_argument("--profile", action="store_true", help="print the 25 most expensive calls")
    args = parser.parse_args()

    home = tempfile.mkdtemp(prefix="twin-bench-monitoring-")
    os.environ["TWIN_HOME"] = home
    from twin_core.cli.monitor import text_tools
    from twin_core.monitoring import parse_window, run_drift_check, synthetic
    from twin_core.settings import get_settings
    from twin_core.stores.artifacts import open_artifact_store
    from twin_core.stores.warehouse import open_warehouse

    settings = get_settings()
    wh, art = open_warehouse(settings), open_artifact_store(settings)
    t0 = datetime(2026, 11, 22, 10, tzinfo=UTC)
    started = time.perf_counter()
    synthetic.write_instruct_dataset(art, "ada-quillfeather", synthetic.instruct_rows(args.reference_rows))
    for hour, style in ((0, "reference"), (1, "shifted")):
        begin = t0 + timedelta(hours=hour)
        rows = synthetic.request_logs(begin, begin + timedelta(hours=1), args.rows, style=style)
        for row in rows:
            wh.append_inference_log(row)
    seed_s = time.perf_counter() - started

    started = time.perf_counter()
    tools = text_tools(settings)
    tools.embed(["warm up"])
    load_s = time.perf_counter() - started

    window = parse_window("1h", t0 + timedelta(hours=2))
    profiler = None
    if args.profile:
        import cProfile

        profiler = cProfile.Profile()
        profiler.enable()
    cpu0 = _cpu()
    started = time.perf_counter()
    result = run_drift_check(settings, window, tools=tools, warehouse=wh, artifacts=art, alert=True)
    check_s = time.perf_counter() - started
    check_cpu_s = _cpu() - cpu0
    # the same window again: the training reference's embeddings now come from the artifact-store cache
    started = time.perf_counter()
    run_drift_check(settings, window, tools=tools, warehouse=wh, artifacts=art, alert=True)
    rerun_s = time.perf_counter() - started
    if profiler is not None:
        import pstats

        profiler.disable()
        pstats.Stats(profiler).sort_stats("cumulative").print_stats(40)
        pstats.Stats(profiler).sort_stats("tottime").print_stats(15)

    out = {
        "benchmark": "monitoring.drift_check",
        "rows": result["rows"],
        "reference_rows": args.reference_rows,
        "embedding_sample": settings.monitor.embedding_sample,
        "verdict": result["verdict"],
        "drifted": [d["signal"] for d in result["drifted"]],
        "check_s": round(check_s, 2),
        "check_cpu_s": round(check_cpu_s, 2),
        "rerun_s": round(rerun_s, 2),
        "goal_s": 30,
        "within_goal": check_s <= 30,
        "model_load_s": round(load_s, 2),
        "seed_s": round(seed_s, 2),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
        "cpus": os.cpu_count(),
        "load_avg_1m": round(os.getloadavg()[0], 2),
    }
    shutil.rmtree(home, ignore_errors=True)
    print(json.dumps(out))


if __name__ == "__main__":
    main()
