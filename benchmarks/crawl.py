"""Crawl throughput against the local fixture site: pages/s at link concurrency 1 and 4.

Each measurement crawls N distinct article pages (fetch + robots + newspaper4k extraction + warehouse
upsert) into a fresh embedded warehouse, twice: with the pages answered at once (CPU-bound: extraction),
and with 100 ms of simulated server latency (what real sites look like, where concurrency pays).
Run: ``.venv/bin/python benchmarks/crawl.py [N]``.
"""

from __future__ import annotations

import importlib.util
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LATENCY_S = 0.1


def _site_server():
    spec = importlib.util.spec_from_file_location("site_server", ROOT / "tests" / "etl" / "fixtures" / "site_server.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def measure(base_url: str, pages: int, concurrency: int, delay: float = 0.0) -> float:
    from twin_core.etl.runner import run_crawl
    from twin_core.settings import load_settings

    with tempfile.TemporaryDirectory(prefix="twin-bench-") as home:
        settings = load_settings(
            home=Path(home),
            crawl_allow_hosts="127.0.0.1",
            crawl_concurrency=concurrency,
            crawl_per_domain_concurrency=concurrency,
        )
        links = [f"{base_url}/articles/c{concurrency}-{i}.html?delay={delay}" for i in range(pages)]
        started = time.perf_counter()
        report = run_crawl(settings, "Bench Author", links)
        elapsed = time.perf_counter() - started
    totals = report.totals()
    assert totals["succeeded"] == pages, totals
    return pages / elapsed


def main() -> None:
    os.environ.setdefault("TWIN_PROGRESS", "0")
    pages = int(sys.argv[1]) if len(sys.argv) > 1 else 40
    server = _site_server().FixtureServer().start()
    try:
        import newspaper  # noqa: F401  (warm the import so it is not charged to the first run)

        measure(server.base_url, 4, 1)  # warm-up
        results = {delay: {c: measure(server.base_url, pages, c, delay) for c in (1, 4)} for delay in (0.0, LATENCY_S)}
    finally:
        server.stop()
    print(f"cpus={os.cpu_count()} pages={pages}")
    for delay, by_c in results.items():
        label = f"{int(delay * 1000)} ms latency"
        for c, rate in by_c.items():
            print(f"{label}, concurrency {c}: {rate:.1f} pages/s")
        print(f"{label}, speed-up 4 vs 1: {by_c[4] / by_c[1]:.2f}x")


if __name__ == "__main__":
    main()
