"""Serving benchmarks (issue #5). Results go to docs/benchmarks.md by hand.

    .venv/bin/python benchmarks/serving.py [--only quality,retrieval,overhead,load] [--chunks 100000]

- quality: hit@5 and MRR on the sample corpus's queries.jsonl, with/without rerank (MMR) and expansion;
- retrieval: p50/p95 of one filtered search (embedding excluded) on a synthetic collection of
  random unit vectors (goal p95 <= 50 ms at 100k chunks);
- overhead: HTTP end to end (`twin serve`, v1 predict of the tiny model) against bare in-process
  generate for the same prompt and token count (goal <= 10 %);
- load: 200 requests at concurrency 8 with max_new_tokens=4 (0 errors, throughput, p95).
Everything runs on a temporary TWIN_HOME and stops by itself.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from types import SimpleNamespace
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))  # tests/support: the server harness and the sample RAG home
from support import SAMPLE_DIR  # noqa: E402
from support.server import running_server  # noqa: E402

KEY = "bench-key-0123456789abcdef"


def pct(values: list[float], p: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(round(p / 100 * (len(values) - 1))))]


def quality(home: Path, models: Path, expansions: int = 2) -> dict[str, Any]:
    from twin_core.inference.pipeline import open_pipeline

    settings = _settings(home, models)
    pipeline = open_pipeline(settings, with_llm=True)
    queries = [json.loads(x) for x in (SAMPLE_DIR / "queries.jsonl").read_text().splitlines() if x.strip()]
    ada = pipeline.resolve_author("", "Ada Quillfeather", None)
    out = {}
    variants = [("similarity", False, 0), ("mmr", True, 0)]
    if expansions:
        variants.append((f"mmr+expansion({expansions})", True, expansions))
    for name, rerank, exp in variants:
        hits, rr, secs = 0, 0.0, []
        for q in queries:
            r = pipeline.retrieve(q["query"], ada, k=5, expansions=exp, rerank=rerank)
            secs.append(r.seconds)
            links = []
            for c in r.chunks:  # rank of documents, not chunks
                if c.link not in links:
                    links.append(c.link)
            ranks = [i for i, link in enumerate(links, 1) if link in q["relevant_links"]]
            hits += bool(ranks)
            rr += 1 / ranks[0] if ranks else 0
        out[name] = {
            "hit@5": round(hits / len(queries), 3),
            "mrr": round(rr / len(queries), 3),
            "p50_ms": round(statistics.median(secs) * 1000, 1),
        }
    out["queries"] = len(queries)
    pipeline.retriever.store.close()  # local Qdrant: the server started next must own the folder
    return out


def retrieval_latency(home: Path, n: int, searches: int = 200) -> dict[str, Any]:
    import numpy as np
    from qdrant_client import models

    from twin_core.inference.search import VectorRetriever
    from twin_core.settings import load_settings
    from twin_core.stores.vectors import open_vector_store

    store = open_vector_store(load_settings(home=home / "synthetic"))
    store.ensure_collection("embedded_articles", 384, metadata={"model_id": "synthetic", "dim": 384})
    rng = np.random.default_rng(0)
    authors = [str(uuid.uuid4()) for _ in range(10)]
    started = time.perf_counter()
    for start in range(0, n, 5000):
        vecs = rng.standard_normal((min(5000, n - start), 384)).astype(np.float32)
        vecs /= np.linalg.norm(vecs, axis=1, keepdims=True)
        points = [
            models.PointStruct(
                id=start + i,
                vector=v.tolist(),
                payload={"author_id": authors[(start + i) % 10], "content": "x", "link": f"l{start + i}"},
            )
            for i, v in enumerate(vecs)
        ]
        store.upsert("embedded_articles", points, batch_size=5000)
    load_s = time.perf_counter() - started
    retriever = VectorRetriever(store, SimpleNamespace(model_id="synthetic", dim=384))  # type: ignore[arg-type]
    times = []
    for _ in range(searches):
        q = rng.standard_normal(384).astype(np.float32)
        q /= np.linalg.norm(q)
        t = time.perf_counter()
        retriever.search(q.tolist(), 20, author_id=authors[0])
        times.append(time.perf_counter() - t)
    store.close()
    return {
        "chunks": n,
        "authors": 10,
        "load_s": round(load_s, 1),
        "searches": searches,
        "p50_ms": round(pct(times, 50) * 1000, 1),
        "p95_ms": round(pct(times, 95) * 1000, 1),
        "backend": "qdrant-client local mode",
    }


def _settings(home: Path, models: Path) -> Any:
    from twin_core.settings import load_settings

    return load_settings(home=home, llm_models_dir=models, llm_threads=1, rag_context_tokens=256)


def _serve(home: Path, models: Path) -> Any:
    """`twin serve` on the bench home: a context manager yielding the running server."""
    env = {
        "TWIN_HOME": str(home),
        "TWIN_LLM_MODELS_DIR": str(models),
        "TWIN_LLM_THREADS": "1",
        "TWIN_RAG_CONTEXT_TOKENS": "256",
        "TWIN_SERVE_MAX_CONCURRENCY": "2",
        "TWIN_SERVE_MAX_QUEUE": "16",
        "TWIN_SERVE_API_KEYS": json.dumps({KEY: "Ada Quillfeather"}),
    }
    return running_server(env, home / "bench-server.log")


def overhead(home: Path, models: Path, runs: int = 8, tokens: int = 16) -> dict[str, Any]:
    """Same messages, same token count: raw predictor route over HTTP vs LocalLLM.chat in-process."""
    import requests

    from twin_core.llm.local import load_local_llm

    messages = [{"role": "system", "content": "You are Ada."}, {"role": "user", "content": "Explain idempotency."}]
    with _serve(home, models) as server:
        port = server.port
        http = []
        for _ in range(runs + 1):
            t = time.perf_counter()
            r = requests.post(
                f"http://127.0.0.1:{port}/v1/models/twin-llm:predict",
                json={"instances": [{"messages": messages, "max_new_tokens": tokens}]},
                headers={"Authorization": f"Bearer {KEY}"},
                timeout=300,
            )
            r.raise_for_status()
            http.append(time.perf_counter() - t)
        rag = []
        for _ in range(runs):
            t = time.perf_counter()
            requests.post(
                f"http://127.0.0.1:{port}/v1/models/twin:predict",
                json={"instances": [{"query": "Explain idempotency.", "max_new_tokens": tokens}]},
                headers={"Authorization": f"Bearer {KEY}"},
                timeout=300,
            ).raise_for_status()
            rag.append(time.perf_counter() - t)
    llm = load_local_llm(_settings(home, models))
    bare = []
    for _ in range(runs + 1):
        t = time.perf_counter()
        llm.chat(messages, max_new_tokens=tokens)
        bare.append(time.perf_counter() - t)
    h, b = statistics.median(http[1:]), statistics.median(bare[1:])
    return {
        "tokens": tokens,
        "runs": runs,
        "bare_generate_ms": round(b * 1000),
        "http_predictor_ms": round(h * 1000),
        "overhead_pct": round((h - b) / b * 100, 1),
        "http_rag_ms_p50": round(statistics.median(rag) * 1000),
    }


def load(home: Path, models: Path, n: int = 200, concurrency: int = 8) -> dict[str, Any]:
    import requests

    port = 0  # set once the server runs
    lat: list[float] = []
    codes: dict[int, int] = {}

    def one(i: int) -> None:
        t = time.perf_counter()
        try:
            r = requests.post(
                f"http://127.0.0.1:{port}/v1/models/twin:predict",
                json={"instances": [{"query": f"What is idempotency? ({i})", "max_new_tokens": 4}]},
                headers={"Authorization": f"Bearer {KEY}"},
                timeout=300,
            )
            code = r.status_code
        except Exception:
            code = -1
        lat.append(time.perf_counter() - t)
        codes[code] = codes.get(code, 0) + 1

    with _serve(home, models) as server:
        port = server.port
        t0 = time.perf_counter()
        with ThreadPoolExecutor(concurrency) as pool:
            list(pool.map(one, range(n)))
        wall = time.perf_counter() - t0
    return {
        "requests": n,
        "concurrency": concurrency,
        "max_new_tokens": 4,
        "status_codes": codes,
        "errors": n - codes.get(200, 0),
        "throughput_rps": round(n / wall, 2),
        "p50_s": round(pct(lat, 50), 2),
        "p95_s": round(pct(lat, 95), 2),
        "wall_s": round(wall, 1),
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--only", default="quality,retrieval,overhead,load")
    ap.add_argument("--chunks", type=int, default=100_000)
    ap.add_argument("--expansions", type=int, default=2, help="0 skips the (slow, LLM) expansion variant")
    ap.add_argument("--models-dir", default=str(REPO / ".twin" / "models"))
    args = ap.parse_args()
    from support.rag_home import build_rag_home

    only = set(args.only.split(","))
    models = Path(args.models_dir)
    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="twin-bench-") as tmp:
        home = Path(tmp) / "twin"
        if only & {"quality", "overhead", "load"}:
            build_rag_home(home, models, extra_author_docs=False)
        if "quality" in only:
            results["quality"] = quality(home, models, args.expansions)
            print(json.dumps({"quality": results["quality"]}), flush=True)
        if "retrieval" in only:
            results["retrieval"] = retrieval_latency(Path(tmp), args.chunks)
            print(json.dumps({"retrieval": results["retrieval"]}), flush=True)
        if "quality" in only and only & {"overhead", "load"}:
            import gc

            gc.collect()  # release the local Qdrant folder held by the quality pipeline
        if "overhead" in only:
            results["overhead"] = overhead(home, models)
            print(json.dumps({"overhead": results["overhead"]}), flush=True)
        if "load" in only:
            results["load"] = load(home, models)
            print(json.dumps({"load": results["load"]}), flush=True)
    print(json.dumps(results))


if __name__ == "__main__":
    main()
