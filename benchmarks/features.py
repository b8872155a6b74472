"""Feature pipeline benchmark: raw model throughput vs. the full pipeline, coverage, incremental re-run.

    .venv/bin/python benchmarks/features.py [--replicas 17] [--keep]

The sample corpus (30 documents) is replicated with varied text (paragraphs shuffled, words swapped,
a replica-specific sentence) to >= 500 documents, imported into a fresh embedded warehouse, then:
(a) raw ``model.encode`` token throughput on the very chunk texts the pipeline produced;
(b) the full pipeline's end-to-end token throughput (read, clean, chunk, embed, load, state);
b/a; the share of cleaned tokens that landed in an embedded chunk; the incremental re-run time on the
unchanged corpus as % of the full run; peak RSS. Prints one JSON line at the end.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from twin_core.demo import sample_dir

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("TWIN_PROGRESS", "0")

SAMPLE = sample_dir()
SWAPS = [("pipeline", "workflow"), ("data", "records"), ("model", "network"), ("test", "check"), ("run", "execute")]


def _vary(text: str, rng: random.Random, replica: int) -> str:
    paragraphs = text.split("\n\n")
    head, body = paragraphs[:1], paragraphs[1:]
    rng.shuffle(body)
    out = "\n\n".join(head + body)
    for a, b in rng.sample(SWAPS, k=2):
        out = out.replace(f" {a} ", f" {b} ")
    return out + f"\n\nReplica {replica}: notes from week {rng.randint(1, 52)} on {rng.choice(['ETL', 'RAG', 'LoRA'])}."


def build_corpus(out: Path, replicas: int) -> int:
    """Write a Handbook-format backup of the sample corpus replicated ``replicas`` times."""
    out.mkdir(parents=True, exist_ok=True)
    shutil.copy(SAMPLE / "UserDocument.json", out / "UserDocument.json")
    total = 0
    for name in ("ArticleDocument.json", "PostDocument.json", "RepositoryDocument.json"):
        rows = json.loads((SAMPLE / name).read_text(encoding="utf-8"))
        replicated = []
        for r in range(replicas):
            rng = random.Random(f"{name}-{r}")
            for row in rows:
                row = {k: v for k, v in row.items() if k != "_id"}
                content = dict(row["content"])
                for key, value in content.items():
                    if isinstance(value, str) and key not in ("language",) and len(value) > 200:
                        content[key] = _vary(value, rng, r) if r else value
                replicated.append({**row, "content": content, "link": row["link"] + (f"?replica={r}" if r else "")})
        (out / name).write_text(json.dumps(replicated), encoding="utf-8")
        total += len(replicated)
    return total


def coverage(store: Any, embedder: Any) -> tuple[int, int]:
    """(cleaned tokens, of which inside an embedded chunk) over the whole feature store."""
    from twin_core.domain.documents import Category
    from twin_core.features.feature_store import cleaned_collection, embedded_collection

    spans: dict[str, list[tuple[int, int]]] = {}
    for cat in Category:
        for p in store.scroll(embedded_collection(cat), batch_size=1024):
            m = p.payload["metadata"]
            spans.setdefault(p.payload["document_id"], []).append((m["start"], m["end"]))
    total = covered = 0
    for cat in Category:
        for p in store.scroll(cleaned_collection(cat), batch_size=1024):
            text, doc_spans = p.payload["content"], spans.get(str(p.id), [])
            enc = embedder.tokenizer(text, add_special_tokens=False, return_offsets_mapping=True, verbose=False)
            for s, e in enc["offset_mapping"]:
                total += 1
                covered += any(a <= s and e <= b for a, b in doc_spans)
    return total, covered


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--replicas", type=int, default=17, help="copies of the 30-document sample (17 -> 510)")
    parser.add_argument("--keep", action="store_true", help="keep the temporary TWIN_HOME")
    args = parser.parse_args()

    home = Path(tempfile.mkdtemp(prefix="twin-bench-features-"))
    os.environ["TWIN_HOME"] = str(home)
    from twin_core.features.embedding_model import load_embedder
    from twin_core.features.pipeline import run_features
    from twin_core.settings import get_settings
    from twin_core.stores.vectors import open_vector_store
    from twin_core.stores.warehouse import open_warehouse
    from twin_core.stores.warehouse_io import import_paths

    settings = get_settings()
    docs = build_corpus(home / "corpus", args.replicas)
    import_paths(open_warehouse(settings), [home / "corpus"])

    t0 = time.perf_counter()
    embedder = load_embedder(settings)
    embedder.encode(["warm up the model and its kernels"] * 8)
    model_load_s = time.perf_counter() - t0

    # (b) the full pipeline, end to end (the model is already in memory, as in a long-lived worker)
    full = run_features(settings, full=True, embedder=embedder)
    full_s = full["timings"]["total"]

    store = open_vector_store(settings)
    try:
        from twin_core.domain.documents import Category
        from twin_core.features.feature_store import embedded_collection

        chunks = [p.payload for c in Category for p in store.scroll(embedded_collection(c), batch_size=1024)]
        texts = [c["content"] for c in chunks]
        tokens = sum(c["token_count"] for c in chunks)
        cleaned_tokens, covered_tokens = coverage(store, embedder)
    finally:
        store.close()

    # (a) raw model.encode on the same chunk texts, same batch size
    t0 = time.perf_counter()
    embedder.encode(texts, batch_size=settings.features.embed_batch_size)
    raw_s = time.perf_counter() - t0

    # incremental re-run on the unchanged corpus (a fresh process would add ~2 s of imports, no model load)
    rerun = run_features(settings, embedder=embedder)
    rerun_s = rerun["timings"]["total"]

    raw_tps, pipe_tps = tokens / raw_s, tokens / full_s
    result = {
        "documents": docs,
        "chunks": len(chunks),
        "chunk_tokens": tokens,
        "cleaned_tokens": cleaned_tokens,
        "model_load_s": round(model_load_s, 2),
        "a_raw_encode_tokens_per_s": round(raw_tps, 1),
        "a_raw_encode_s": round(raw_s, 2),
        "b_pipeline_tokens_per_s": round(pipe_tps, 1),
        "b_pipeline_s": round(full_s, 2),
        "b_over_a": round(pipe_tps / raw_tps, 3),
        "pipeline_timings_s": full["timings"],
        "embedded_share_of_cleaned_tokens": round(covered_tokens / cleaned_tokens, 6),
        "incremental_rerun_s": round(rerun_s, 3),
        "incremental_rerun_pct_of_full": round(100 * rerun_s / full_s, 2),
        "rerun_processed": rerun["processed"],
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "cpus": os.cpu_count(),
        "torch_threads": __import__("torch").get_num_threads(),
    }
    for key, value in result.items():
        print(f"{key:38s} {value}", file=sys.stderr)
    print(json.dumps(result))
    if not args.keep:
        shutil.rmtree(home, ignore_errors=True)


if __name__ == "__main__":
    main()
