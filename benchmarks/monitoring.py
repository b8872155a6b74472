"""Drift-check benchmark: `run_drift_check` over a window of 10k logged requests (goal: <= 30 s CPU).

    .venv/bin/python benchmarks/monitoring.py [--rows 10000] [--profile]

A fresh embedded TWIN_HOME gets 10k synthetic requests in the previous hour (the reference: recent
traffic) and 10k shifted requests in the checked hour. Timed in CPU time (the machine is shared: wall
time depends on the load, printed too), in one run:
- before: ``plots=True``, as the check ran before (Evidently's ValueDrift reports with their plotly
  figures, the EmbeddingsDrift report with its t-SNE plot, HTML + JSON);
- after: the default (Evidently's stattests called directly, no plots, embeddings cached by text);
both on a cold embedding cache, then the default again on the warm cache (the next hour reuses this
hour's embeddings), then the default on a cold cache over the same traffic logged with its query
embeddings (as `twin serve` and `twin rag query` write them: the check embeds no logged query). Every
timing includes the permutation test of each distance signal (999 relabellings, at most 1,000 values a
side). The embedding model is loaded before the clock starts. Prints one JSON line.
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
from typing import Any

# benchmarks/datasets.py would shadow Hugging Face `datasets` (sentence-transformers imports it)
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("TWIN_PROGRESS", "0")
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))  # support.synthetic_traffic


def _cpu() -> float:
    """CPU seconds of this process (all threads): what the check costs, whatever else shares the machine."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _timed(check: Any, **kwargs: Any) -> tuple[dict, float, float]:
    cpu0, started = _cpu(), time.perf_counter()
    result = check(**kwargs)
    return result, _cpu() - cpu0, time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=10_000, help="requests in the checked window")
    parser.add_argument("--profile", action="store_true", help="print the most expensive calls of the default check")
    args = parser.parse_args()

    home = tempfile.mkdtemp(prefix="twin-bench-monitoring-")
    os.environ["TWIN_HOME"] = home
    from support import synthetic_traffic as synthetic

    from twin_core.cli.monitor import text_tools
    from twin_core.domain.inference import QueryEmbedding
    from twin_core.monitoring import parse_window, run_drift_check
    from twin_core.settings import get_settings
    from twin_core.stores.artifacts import open_artifact_store
    from twin_core.stores.warehouse import open_warehouse

    settings = get_settings()
    wh, art = open_warehouse(settings), open_artifact_store(settings)
    t0 = datetime(2026, 11, 22, 10, tzinfo=UTC)
    tools = text_tools(settings)
    tools.embed(["warm up"])
    vectors: dict[str, Any] = {}
    # hours 0-1: logs without embeddings (before); hours 3-4: the same traffic with its query embeddings
    for hour, style, logged in (
        (0, "reference", False),
        (1, "shifted", False),
        (3, "reference", True),
        (4, "shifted", True),
    ):
        begin = t0 + timedelta(hours=hour)
        rows = list(synthetic.request_logs(begin, begin + timedelta(hours=1), args.rows, style=style))
        if logged:  # outside the clock: retrieval computed these when it served the requests
            new = sorted({r.query for r in rows if r.query and r.query not in vectors})
            vectors.update(zip(new, (list(map(float, v)) for v in tools.embed(new)), strict=True))
            for r in rows:
                if r.query:
                    r.query_embedding = QueryEmbedding.of(tools.model_id, vectors[r.query])
        for row in rows:
            wh.append_inference_log(row)
    window = parse_window("1h", t0 + timedelta(hours=2))

    def check(**kwargs: Any) -> dict:
        return run_drift_check(
            settings, kwargs.pop("window", window), tools=tools, warehouse=wh, artifacts=art, **kwargs
        )

    before, before_cpu, before_s = _timed(check, plots=True)
    shutil.rmtree(Path(home, "artifacts", "monitoring", "_cache"), ignore_errors=True)  # cold cache again
    profiler = None
    if args.profile:
        import cProfile

        profiler = cProfile.Profile()
        profiler.enable()
    after, after_cpu, after_s = _timed(check)
    if profiler is not None:
        import pstats

        profiler.disable()
        pstats.Stats(profiler).sort_stats("cumulative").print_stats(30)
    _, warm_cpu, _ = _timed(check)
    shutil.rmtree(Path(home, "artifacts", "monitoring", "_cache"), ignore_errors=True)  # cold cache again
    logged, logged_cpu, _ = _timed(check, window=parse_window("1h", t0 + timedelta(hours=5)))
    assert [d["signal"] for d in before["drifted"]] == [d["signal"] for d in after["drifted"]]
    out = {
        "benchmark": "monitoring.drift_check",
        "rows": after["rows"],
        "reference_rows": after["reference"]["requests"],
        "embedding_sample": settings.monitor.embedding_sample,
        "drifted": [d["signal"] for d in after["drifted"]],
        # each distance's permutation test (p-value, values permuted a side): part of every timing below
        "p_values": {d["signal"]: [d["p_value"], d.get("permuted_rows")] for d in after["drifted"]},
        "before_plots_cpu_s": round(before_cpu, 2),
        "after_cpu_s": round(after_cpu, 2),
        "after_warm_cache_cpu_s": round(warm_cpu, 2),
        "after_logged_embeddings_cpu_s": round(logged_cpu, 2),
        "logged_embeddings_drifted": [d["signal"] for d in logged["drifted"]],
        "speedup": round(before_cpu / after_cpu, 2),
        "before_wall_s": round(before_s, 2),
        "after_wall_s": round(after_s, 2),
        "goal_cpu_s": 30,
        "within_goal": after_cpu <= 30,
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
        "cpus": os.cpu_count(),
        "load_avg_1m": round(os.getloadavg()[0], 2),
    }
    shutil.rmtree(home, ignore_errors=True)
    print(json.dumps(out))


if __name__ == "__main__":
    main()
