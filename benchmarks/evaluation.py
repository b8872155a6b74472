"""Evaluation benchmark: evaluation time per 100 held-out samples (no judge), and the canary routing overhead.

    .venv/bin/python benchmarks/evaluation.py [--rows 10] [--max-new-tokens 64] [--threads 1] [--batch-size N]

(1) ``evaluate`` (the real code: perplexity, an answer per row from candidate AND baseline, ROUGE-L,
    topic similarity with all-MiniLM-L6-v2, stylometry, groundedness), run twice in one process:
    answers one row at a time (batch 1, before) and batched (``--batch-size``, after) on ``--rows``
    held-out rows of an instruct dataset built from the sample corpus, both models being the converted
    SmolLM2-135M-Instruct, judge off; the time is scaled to 100 samples and broken down by phase.
(2) canary routing: the per-request cost of the sticky split (client id digest + bucket) over 2,000
    clients at 10 %, against the p50 latency of one answer measured in (1); plus the share the canary got
    and whether a second pass sends every client to the same side.

Prints one JSON line.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("TWIN_PROGRESS", "0")
os.environ["COMET_API_KEY"] = ""


def build_dataset(settings: Any, rows: int) -> str:
    import io

    import pyarrow as pa
    import pyarrow.parquet as pq
    from sample_docs import sample_documents

    from twin_core.stores.artifacts import open_artifact_store

    docs = [(doc_id, cat, link, title, text[:600]) for doc_id, cat, link, title, text in sample_documents()]
    out = [
        {"id": f"r{i:03d}", "instruction": f"Write a short piece about: {title}", "answer": text,
         "document_id": doc_id, "category": cat, "link": link, "split": "test"}
        for i, (doc_id, cat, link, title, text) in enumerate((docs * (rows // len(docs) + 1))[:rows])
    ]  # fmt: skip

    def parquet(r: list[dict]) -> bytes:
        buf = io.BytesIO()
        pq.write_table(pa.Table.from_pylist(r), buf)
        return buf.getvalue()

    train = [{**r, "id": "t" + r["id"], "split": "train"} for r in out[:2]]
    av = open_artifact_store(settings).put_version(
        "datasets/instruct/bench-author",
        {"train.parquet": parquet(train), "test.parquet": parquet(out)},
        {"author": "Bench Author", "author_slug": "bench-author", "kind": "instruct"},
    )
    return f"instruct/bench-author/{av.version}"


def routing(p50_ms: float) -> dict[str, Any]:
    from twin_core.serving.routing import client_id_of, goes_to_canary

    keys = [f"api-key-{i:05d}" for i in range(2000)]
    best = float("inf")
    for _ in range(5):
        started = time.perf_counter()
        first = [goes_to_canary(client_id_of(k, None, None), "bench-author", "bench-author/v0002", 10) for k in keys]
        best = min(best, time.perf_counter() - started)
    second = [goes_to_canary(client_id_of(k, None, None), "bench-author", "bench-author/v0002", 10) for k in keys]
    per_request_us = best / len(keys) * 1e6
    return {
        "requests": len(keys),
        "canary_share": round(sum(first) / len(first), 4),
        "sticky": first == second,
        "per_request_us": round(per_request_us, 2),
        "p50_answer_ms": round(p50_ms, 1),
        "overhead_pct_of_p50": round(per_request_us / 1000 / p50_ms * 100, 5),
    }


def previous_row_perplexities(llm: Any, rows: list[dict], author: str, max_length: int) -> list[float | None]:
    """The evaluation's perplexity before the shared-start reuse: each row alone, the model's own loss
    over the full sequence (every position's logits)."""
    import math

    import torch

    from twin_core.llm.rows import prompt_and_answer_text, sft_example

    out: list[float | None] = []
    with torch.inference_mode():
        for row in rows:
            prompt, completion = prompt_and_answer_text(llm.tokenizer, sft_example(dict(row), author))
            p_ids = llm.tokenizer(prompt, add_special_tokens=False)["input_ids"]
            c_ids = llm.tokenizer(completion, add_special_tokens=False)["input_ids"]
            ids = (p_ids + c_ids)[-max_length:]
            n_scored = min(len(c_ids), len(ids))
            if n_scored <= 0 or len(ids) < 2:
                out.append(None)
                continue
            input_ids = torch.tensor([ids])
            labels = input_ids.clone()
            labels[:, : len(ids) - n_scored] = -100
            out.append(math.exp(float(llm.model(input_ids=input_ids, labels=labels).loss)))
    return out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=10)
    parser.add_argument("--max-new-tokens", type=int, default=64)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--batch-size", type=int, default=0, help="rows per batch after (0 = configs/evaluation.yaml)")
    args = parser.parse_args()

    from twin_core.evaluation.config import load_eval_config
    from twin_core.evaluation.judge import Judge
    from twin_core.evaluation.run import Tools, evaluate
    from twin_core.features.embedding_model import load_embedder
    from twin_core.llm.loading import load_local_llm, resolve_source
    from twin_core.settings import load_settings, updated
    from twin_core.stores.registry import open_registry

    with tempfile.TemporaryDirectory(prefix="twin-bench-eval-") as tmp:
        settings = load_settings(home=Path(tmp) / "twin", llm_threads=args.threads)
        if os.environ.get("TWIN_LLM_MODELS_DIR"):
            settings = updated(settings, llm_models_dir=os.environ["TWIN_LLM_MODELS_DIR"])
        load_local_llm(settings)  # converts the packaged GGUF once
        smol = resolve_source(settings).location
        dataset = build_dataset(settings, args.rows)
        folder = Path(tmp) / "cand"
        (folder / "merged").mkdir(parents=True)
        (folder / "merged" / "config.json").write_text("{}")
        ref = (
            open_registry(settings)
            .register("Bench Author", folder, {"base_model": smol, "dataset_versions": [dataset]})
            .ref
        )
        answer_times: list[float] = []

        class Timed:
            def __init__(self, llm: Any) -> None:
                self.llm, self.model, self.tokenizer = llm, llm.model, llm.tokenizer
                self.count_tokens, self.truncate = llm.count_tokens, llm.truncate

            def chat(self, messages: Any, **kw: Any) -> Any:
                started = time.perf_counter()
                gen = self.llm.chat(messages, **kw)
                answer_times.append((time.perf_counter() - started) * 1000)
                return gen

            def generate_batch(self, reqs: Any, **kw: Any) -> Any:
                return self.llm.generate_batch(reqs, **kw)

        timed = {"on": True}

        def load_model(s: Any, location: str, version: str) -> Any:  # both sides: SmolLM2-135M
            llm = load_local_llm(updated(s, llm_model_id=smol, llm_model_version=version))
            return Timed(llm) if timed["on"] else llm  # batched: the LocalLLM itself (the continuous engine)

        embedder = load_embedder(settings)
        cfg = load_eval_config(settings)
        import dataclasses

        cfg = dataclasses.replace(cfg, max_rows=args.rows, min_rows=args.rows, max_new_tokens=args.max_new_tokens)
        args.batch_size = args.batch_size or cfg.batch_size
        tools = Tools(embed=embedder.encode, judge=Judge(None, "off"), load_model=load_model)
        runs: dict[str, Any] = {}
        texts: dict[int, Any] = {}
        ppl: dict[int, dict[str, float]] = {}
        import twin_core.evaluation.scoring as scoring

        current = scoring.row_perplexities
        for batch in (1, args.batch_size):  # before (one row at a time) and after (batched), same run
            timed["on"] = batch == 1
            # before: each row's perplexity on its own full sequence, as the evaluation scored it until now
            scoring.row_perplexities = previous_row_perplexities if batch == 1 else current
            started = time.perf_counter()
            result = evaluate(settings, ref, "base", tools=tools, config=dataclasses.replace(cfg, batch_size=batch))
            total = time.perf_counter() - started
            texts[batch] = [s["candidate"]["answer"] for s in result.samples]
            ppl[batch] = {k: v for k, v in result.perplexity.items() if v is not None}
            runs[f"batch_{batch}"] = {
                "eval_seconds": round(total, 1),
                "eval_seconds_per_100_samples": round(total / result.rows * 100, 1),
                "per_100_by_phase_s": {
                    k: round(v / result.rows * 100, 1) for k, v in result.seconds.items() if k != "total"
                },
            }
    before, after = runs["batch_1"], runs[f"batch_{args.batch_size}"]
    out = {
        "rows": result.rows,
        "max_new_tokens": args.max_new_tokens,
        "threads": args.threads,
        **runs,
        "speedup": round(before["eval_seconds"] / after["eval_seconds"], 2),
        "same_greedy_answers": texts[1] == texts[args.batch_size],
        # the mean held-out perplexity per model, before and after (equal up to float rounding)
        "perplexity_before_after": {
            k: [round(v, 4), round(ppl[args.batch_size].get(k, 0.0), 4)] for k, v in ppl[1].items()
        },
        "routing": routing(statistics.median(answer_times)) if answer_times else None,
    }
    print(json.dumps(out))


if __name__ == "__main__":
    main()
