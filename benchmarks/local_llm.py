"""The local LLM on its device (issue 22 item 7): the same requests one at a time, then as one batch job.

    .venv/bin/python benchmarks/local_llm.py [--requests 32] [--max-new-tokens 64]      # packaged SmolLM2
    python3 benchmarks/local_llm.py --random smollm2 --tokenizer .gpu/tok                # a lent GPU
    .venv/bin/python benchmarks/local_llm.py --random tiny --requests 4 --max-new-tokens 8   # its CPU dry run

The model is loaded by the product's own loader (``load_local_llm``), so it lands where
``TWIN_LLM_DEVICE`` puts it (auto: a CUDA GPU in bf16, else the CPU). ``--random SHAPE`` builds a
random-init Llama of that shape first (benchmarks/random_model.py), for a device that has no weights: its
logits are nearly flat, so its greedy choices are near-ties that bf16 rounding flips more often than a
trained model's; ``--fp32`` casts the placed model to float32 to tell rounding from a batching fault.

The requests: "Write a short piece about: <title>" for the sample corpus's titles, greedy. Timed: every
request through ``chat`` in turn (before: one at a time), then all of them through
``batch_jobs.generate_all``, the path evaluation and rejected answers take (after). Tokens/s = new
tokens / wall time; the texts of both are compared one by one. Prints one JSON line.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("TWIN_PROGRESS", "0")
sys.path.insert(0, str(Path(__file__).resolve().parent))  # random_model, sample_docs, also when run from elsewhere


def prompts(n: int) -> list[str]:
    from sample_docs import sample_documents

    titles = sorted(title for _, _, _, title, _ in sample_documents())
    return [f"Write a short piece about: {t}" for t in (titles * (n // len(titles) + 1))[:n]]


def _synced(llm: Any) -> None:
    if llm.model.device.type == "cuda":
        import torch

        torch.cuda.synchronize()


def one_at_a_time(llm: Any, reqs: list[Any]) -> tuple[list[Any], float]:
    started = time.perf_counter()
    out = [llm.chat(r.messages, max_new_tokens=r.max_new_tokens, temperature=0.0) for r in reqs]
    _synced(llm)
    return out, time.perf_counter() - started


def batch_job(llm: Any, reqs: list[Any], max_batch: int) -> tuple[list[Any], float]:
    from twin_core.llm.batch_jobs import generate_all

    started = time.perf_counter()
    out = generate_all(llm, reqs, max_batch=max_batch)
    _synced(llm)
    failed = [r for r in out if isinstance(r, BaseException)]
    if failed:
        raise SystemExit(f"{len(failed)} batched requests failed: {failed[0]!r}")
    return out, time.perf_counter() - started


def _args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=32)
    parser.add_argument("--max-new-tokens", type=int, default=64)
    parser.add_argument("--max-batch", type=int, default=16, help="rows per engine (configs/evaluation.yaml: 16)")
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (0 = torch's default)")
    parser.add_argument("--random", choices=("smollm2", "tiny", "1b"), help="a random-init model of this shape")
    parser.add_argument("--tokenizer", help="--random: a tokenizer folder (a device without the packaged GGUF)")
    parser.add_argument("--embed-scale", type=float, default=1.0, help="--random: embeddings times this")
    parser.add_argument("--fp32", action="store_true", help="cast the placed model to float32 (a GPU's default: bf16)")
    return parser.parse_args()


def _settings(args: argparse.Namespace, home: Path) -> Any:
    from twin_core.settings import load_settings, updated

    settings = load_settings(home=home, llm_threads=args.threads)
    if os.environ.get("TWIN_LLM_MODELS_DIR"):
        settings = updated(settings, llm_models_dir=os.environ["TWIN_LLM_MODELS_DIR"])
    if args.random:
        from random_model import save_random_llama

        folder = save_random_llama(home / f"random-{args.random}", args.random, args.tokenizer,
                                   dtype="float32", embed_scale=args.embed_scale)  # fmt: skip
        settings = updated(settings, llm_model_id=str(folder), llm_model_version=f"random-{args.random}")
    return settings


def main() -> None:
    args = _args()
    import torch

    from twin_core.llm.loading import load_local_llm
    from twin_core.llm.local import GenRequest

    with tempfile.TemporaryDirectory(prefix="twin-bench-llm-") as tmp:
        llm = load_local_llm(_settings(args, Path(tmp)))
        if args.fp32:
            llm.model.float()
        reqs = [GenRequest([{"role": "user", "content": p}], args.max_new_tokens) for p in prompts(args.requests)]
        llm.chat(reqs[0].messages, max_new_tokens=4)  # warm-up: CUDA context, kernels, the packed weights
        if llm.model.device.type == "cuda":
            torch.cuda.reset_peak_memory_stats()
        alone, t_alone = one_at_a_time(llm, reqs)
        batched, t_batched = batch_job(llm, reqs, args.max_batch)
        tokens, batched_tokens = (sum(g.completion_tokens for g in gens) for gens in (alone, batched))
        same = [a.text == b.text for a, b in zip(alone, batched, strict=True)]
        result = {
            "model": llm.model_version,
            "device": str(llm.model.device),
            "dtype": str(llm.model.dtype).removeprefix("torch."),
            "gpu": torch.cuda.get_device_name() if llm.model.device.type == "cuda" else None,
            "requests": len(reqs),
            "new_tokens": tokens,
            "batched_new_tokens": batched_tokens,
            "one_at_a_time_s": round(t_alone, 2),
            "batch_job_s": round(t_batched, 2),
            "one_at_a_time_tokens_per_s": round(tokens / t_alone, 1),
            "batch_job_tokens_per_s": round(batched_tokens / t_batched, 1),
            "speedup": round(t_alone / t_batched, 2),
            "same_text": f"{sum(same)}/{len(same)}",
            "first_different": next((i for i, s in enumerate(same) if not s), None),
            "peak_gpu_gib": round(torch.cuda.max_memory_allocated() / 2**30, 2) if torch.cuda.is_available() else None,
            "peak_rss_gib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20, 2),
        }
        print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
