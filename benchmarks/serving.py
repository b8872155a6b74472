"""Serving benchmarks (issue #5). Results go to docs/benchmarks.md by hand.

    .venv/bin/python benchmarks/serving.py [--only quality,retrieval,overhead,load] [--chunks 100000]

- quality: hit@5 and MRR on the sample corpus's queries.jsonl, with/without rerank (MMR) and expansion;
- retrieval: p50/p95 of one filtered search (embedding excluded) on a synthetic collection of
  random unit vectors (goal p95 <= 50 ms at 100k chunks);
- overhead: HTTP end to end (`twin serve`, v1 predict of the tiny model) against bare in-process
  generate for the same prompt and token count (goal <= 10 %);
- load: 200 requests at concurrency 8 with max_new_tokens=4 (0 errors, throughput, p95);
- batching (issue 15): 1 and 8 concurrent clients x 64 new tokens on the RAG route, batching on vs
  off in one run: total completion tokens/s, p50/p95 latency (goal at 8 clients: >= 3x tokens/s, p95
  no worse).
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
# benchmarks/ is sys.path[0] when run as a script: its datasets.py would shadow the `datasets` package
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]
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

    from twin_core.inference.search import VectorRetriever
    from twin_core.settings import load_settings
    from twin_core.stores.vectors import VectorPoint, open_vector_store

    store = open_vector_store(load_settings(home=home / "synthetic"))
    store.ensure_collection("embedded_articles", 384, metadata={"model_id": "synthetic", "dim": 384})
    rng = np.random.default_rng(0)
    authors = [str(uuid.uuid4()) for _ in range(10)]
    started = time.perf_counter()
    for start in range(0, n, 5000):
        vecs = rng.standard_normal((min(5000, n - start), 384)).astype(np.float32)
        vecs /= np.linalg.norm(vecs, axis=1, keepdims=True)
        points = [
            VectorPoint(
                str(uuid.UUID(int=start + i)),
                {"author_id": authors[(start + i) % 10], "content": "x", "link": f"l{start + i}"},
                v.tolist(),
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


def _serve(home: Path, models: Path, **extra: str) -> Any:
    """`twin serve` on the bench home: a context manager yielding the running server."""
    env = {
        "TWIN_HOME": str(home),
        "TWIN_LLM_MODELS_DIR": str(models),
        "TWIN_LLM_THREADS": "1",
        "TWIN_RAG_CONTEXT_TOKENS": "256",
        "TWIN_SERVE_MAX_CONCURRENCY": "8",
        "TWIN_SERVE_MAX_QUEUE": "16",
        "TWIN_SERVE_API_KEYS": json.dumps({KEY: "Ada Quillfeather"}),
        **extra,
    }
    return running_server(env, home / "bench-server.log")


def overhead(home: Path, models: Path, runs: int = 8, tokens: int = 16) -> dict[str, Any]:
    """Same messages, same token count: raw predictor route over HTTP vs LocalLLM.chat in-process."""
    import requests

    from twin_core.llm.loading import load_local_llm

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


QUESTIONS = [
    "Why do random record IDs turn an upsert into duplicate inserts when a job is rerun?",
    "How do I tune HNSW recall with ef and M?",
    "What is chunk overlap for?",
    "What is idempotency in a data pipeline?",
    "How should retries be handled when a crawler fails?",
    "Why keep the metadata file last when writing a version?",
    "What does a reranker add on top of vector search?",
    "How do you keep an embedding model and its index in sync?",
]


# ~170 prompt tokens, as in the issue's measurement; a different question per request
PERSONA = (
    "You are Ada Quillfeather, a data engineer who writes about reliable pipelines, idempotent loads, "
    "vector search and the operations of small machine learning systems. Answer in her voice: short "
    "paragraphs, concrete advice, no marketing language. Use the context when it helps and say so when "
    "it does not cover the question. Context: rerunning a job must not duplicate rows; deterministic ids "
    "turn inserts into upserts; metadata is written last so that a killed run leaves no half version."
)


def _clients(port: int, clients: int, per_client: int, tokens: int, route: str = "predictor") -> dict[str, Any]:
    """`clients` threads, each sending `per_client` requests back to back; latency per request.

    route "predictor": the LLM alone (`/v1/models/twin-llm:predict`, chat messages in) - what batching
    changes; route "rag": the full RAG request (`/v1/models/twin:predict`), retrieval included.
    """
    import requests

    lat: list[float] = []
    completion = 0
    errors = 0

    def client(c: int) -> None:
        nonlocal completion, errors
        for r in range(per_client):
            q = QUESTIONS[(c * per_client + r) % len(QUESTIONS)]
            if route == "rag":
                url = f"http://127.0.0.1:{port}/v1/models/twin:predict"
                body: dict[str, Any] = {"instances": [{"query": q, "max_new_tokens": tokens}]}
            else:
                url = f"http://127.0.0.1:{port}/v1/models/twin-llm:predict"
                messages = [{"role": "system", "content": PERSONA}, {"role": "user", "content": q}]
                body = {"instances": [{"messages": messages, "max_new_tokens": tokens}]}
            t = time.perf_counter()
            resp = requests.post(url, json=body, headers={"Authorization": f"Bearer {KEY}"}, timeout=900)
            lat.append(time.perf_counter() - t)
            if resp.status_code != 200:
                errors += 1
                continue
            pred = resp.json()["predictions"][0]
            completion += pred["usage"]["completion_tokens"] if route == "rag" else pred["completion_tokens"]

    t0 = time.perf_counter()
    with ThreadPoolExecutor(clients) as pool:
        list(pool.map(client, range(clients)))
    wall = time.perf_counter() - t0
    return {
        "clients": clients,
        "requests": clients * per_client,
        "errors": errors,
        "completion_tokens": completion,
        "tokens_per_s": round(completion / wall, 1),
        "p50_s": round(pct(lat, 50), 2),
        "p95_s": round(pct(lat, 95), 2),
        "wall_s": round(wall, 1),
    }


def _batch_metrics(port: int) -> dict[str, float]:
    import requests

    text = requests.get(f"http://127.0.0.1:{port}/metrics", timeout=10).text
    out: dict[str, float] = {}
    for line in text.splitlines():
        for name in ("twin_batch_size_sum", "twin_batch_size_count", "twin_batch_queue_seconds_sum"):
            if line.startswith(name + "{"):
                out[name] = out.get(name, 0.0) + float(line.rsplit(" ", 1)[1])
        if line.startswith("twin_prefill_tokens_total{"):  # continuous: prompt tokens computed or cached
            source = "cached" if 'source="cached"' in line else "computed"
            out[f"prefill_{source}"] = out.get(f"prefill_{source}", 0.0) + float(line.rsplit(" ", 1)[1])
    return out


MODES = {  # label -> the server's batching settings
    "off": {"TWIN_SERVE_BATCHING": "false"},
    "window": {"TWIN_SERVE_BATCHING": "true", "TWIN_SERVE_BATCH_MODE": "window"},
    "continuous": {"TWIN_SERVE_BATCHING": "true", "TWIN_SERVE_BATCH_MODE": "continuous"},
    "continuous_noprefix": {
        "TWIN_SERVE_BATCHING": "true",
        "TWIN_SERVE_BATCH_MODE": "continuous",
        "TWIN_SERVE_PREFIX_CACHE": "false",
    },
}


def batching(
    home: Path,
    models: Path,
    tokens: int = 64,
    per_client_8: int = 2,
    runs_1: int = 4,
    route: str = "predictor",
    modes: tuple[str, ...] = ("off", "window", "continuous"),
    threads: int = 1,
) -> dict[str, Any]:
    """Each batching mode at 1 client and at 8 concurrent clients, `tokens` new tokens each, one run."""
    out: dict[str, Any] = {"max_new_tokens": tokens, "route": route, "llm_threads": threads}
    for label in modes:
        # a long request timeout: the off run at 8 clients queues for minutes on a busy CPU
        env = {**MODES[label], "TWIN_SERVE_REQUEST_TIMEOUT_S": "900", "TWIN_LLM_THREADS": str(threads)}
        with _serve(home, models, **env) as server:
            _clients(server.port, 1, 1, 4, route)  # warm-up (first-call costs)
            one = _clients(server.port, 1, runs_1, tokens, route)
            eight = _clients(server.port, 8, per_client_8, tokens, route)
            m = _batch_metrics(server.port)
        mean = m.get("twin_batch_size_sum", 0) / max(1.0, m.get("twin_batch_size_count", 0))
        out[label] = {
            "c1": one,
            "c8": eight,
            # window: requests per generate; continuous: rows per decode step
            "mean_batch_size": round(mean, 2),
            "prefill_tokens": {k[8:]: int(v) for k, v in m.items() if k.startswith("prefill_")},
            "c8_vs_c1_tokens_per_s": round(eight["tokens_per_s"] / max(one["tokens_per_s"], 1e-9), 2),
        }
        print(json.dumps({"batching": {label: out[label]}}), flush=True)
    for label in modes:
        if label != "off" and "off" in out:
            out[f"c8_{label}_vs_off_tokens_per_s"] = round(
                out[label]["c8"]["tokens_per_s"] / max(out["off"]["c8"]["tokens_per_s"], 1e-9), 2
            )
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--only", default="quality,retrieval,overhead,load,batching")
    ap.add_argument("--chunks", type=int, default=100_000)
    ap.add_argument("--expansions", type=int, default=2, help="0 skips the (slow, LLM) expansion variant")
    ap.add_argument("--route", default="predictor", choices=["predictor", "rag"], help="batching: LLM alone or RAG")
    ap.add_argument("--modes", default="off,window,continuous", help="batching: which server modes, in order")
    ap.add_argument("--tokens", type=int, default=64, help="batching: max_new_tokens per request")
    ap.add_argument("--llm-threads", type=int, default=1, help="batching: the server's TWIN_LLM_THREADS")
    ap.add_argument("--models-dir", default=str(REPO / ".twin" / "models"))
    args = ap.parse_args()
    from support.rag_home import build_rag_home

    only = set(args.only.split(","))
    models = Path(args.models_dir)
    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="twin-bench-") as tmp:
        home = Path(tmp) / "twin"
        if only & {"quality", "overhead", "load", "batching"}:
            build_rag_home(home, models, extra_author_docs=False)
        if "quality" in only:
            results["quality"] = quality(home, models, args.expansions)
            print(json.dumps({"quality": results["quality"]}), flush=True)
        if "retrieval" in only:
            results["retrieval"] = retrieval_latency(Path(tmp), args.chunks)
            print(json.dumps({"retrieval": results["retrieval"]}), flush=True)
        if "quality" in only and only & {"overhead", "load", "batching"}:
            import gc

            gc.collect()  # release the local Qdrant folder held by the quality pipeline
        if "overhead" in only:
            results["overhead"] = overhead(home, models)
            print(json.dumps({"overhead": results["overhead"]}), flush=True)
        if "load" in only:
            results["load"] = load(home, models)
            print(json.dumps({"load": results["load"]}), flush=True)
        if "batching" in only:
            results["batching"] = batching(
                home,
                models,
                tokens=args.tokens,
                route=args.route,
                modes=tuple(args.modes.split(",")),
                threads=args.llm_threads,
            )
            print(json.dumps({"batching": results["batching"]}), flush=True)
    print(json.dumps(results))


if __name__ == "__main__":
    main()
