"""Training benchmark: `twin train sft` (cpu-tiny) vs a plain TRL + peft script, same data and settings.

    .venv/bin/python benchmarks/training.py [--steps 10] [--threads 2] [--keep]

One run, two child processes in turn, on the same instruct dataset version (built from the sample
corpus: one row per article/post, the author's own text as the answer), the same converted
SmolLM2-135M, the same LoRA, batch, max_length, learning rate, seed and step count:

(a) ours: ``twin train sft --profile cpu-tiny --max-steps N`` — the real step, with checkpoints to the
    artifact store every N/2 steps and Comet offline logging inside the training loop;
(b) plain: the minimal TRL script anyone would write (``SFTTrainer`` + ``LoraConfig``), no checkpoints,
    no tracking.

Tokens/s = non-padding input tokens seen / wall time of ``trainer.train`` (both sides measure the same
thing); ratio = ours / plain (goal >= 1.0). Peak RSS of each child from ``wait4``. Prints one JSON line.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("TWIN_PROGRESS", "0")

REPO = Path(__file__).resolve().parents[1]
TWIN = Path(sys.prefix) / "bin" / "twin"


def build_dataset(settings: Any) -> str:
    """An instruct dataset version (CONTRACTS §2 layout) from the sample corpus."""
    import io

    import pyarrow as pa
    import pyarrow.parquet as pq

    from twin_core.demo import sample_dir
    from twin_core.stores.artifacts import open_artifact_store

    rows = []
    for fname, category in (("ArticleDocument.json", "articles"), ("PostDocument.json", "posts")):
        for doc in json.loads((sample_dir() / fname).read_text()):
            content = doc["content"]
            text = " ".join(str(content.get("Content") or content.get("text") or "").split())
            title = content.get("Title") or text[:60]
            rows.append(
                {
                    "id": doc["_id"],
                    "instruction": f"Write about: {title}",
                    "answer": text[:700].rsplit(" ", 1)[0],
                    "document_id": doc["_id"],
                    "category": category,
                    "link": doc.get("link", ""),
                }
            )
    rows.sort(key=lambda r: r["id"])
    n_test = max(2, len(rows) // 10)
    files = {}
    for split, part in (("train", rows[n_test:]), ("test", rows[:n_test])):
        buf = io.BytesIO()
        pq.write_table(pa.Table.from_pylist([{**r, "split": split} for r in part]), buf)
        files[f"{split}.parquet"] = buf.getvalue()
    av = open_artifact_store(settings).put_version(
        "datasets/instruct/ada-quillfeather", files, {"author": "Ada Quillfeather", "kind": "instruct"}
    )
    return f"instruct/ada-quillfeather/{av.version}"


def plain(dataset: str, steps: int, out: Path) -> None:
    """(b) The plain TRL + peft script: what one writes from the TRL docs, nothing else."""
    import torch
    from datasets import Dataset
    from peft import LoraConfig
    from transformers import AutoModelForCausalLM, AutoTokenizer, set_seed
    from trl import SFTConfig, SFTTrainer

    from twin_core.llm.base_model import resolve_base
    from twin_core.llm.rows import sft_example
    from twin_core.settings import get_settings
    from twin_core.training.data import load_training_data
    from twin_core.training.profiles import load_profile

    settings = get_settings()
    if settings.llm.threads:
        torch.set_num_threads(settings.llm.threads)
    profile = load_profile(settings, "cpu-tiny")  # the same numbers, read from the same file
    td = load_training_data(settings, dataset, "instruct")
    location = resolve_base(settings, profile.base_model)
    tokenizer = AutoTokenizer.from_pretrained(location)
    tokenizer.pad_token = "<|endoftext|>"
    model = AutoModelForCausalLM.from_pretrained(location, dtype=torch.float32)
    train = Dataset.from_list([sft_example(r, td.author) for r in td.train])
    set_seed(profile.seed)
    args = SFTConfig(
        output_dir=str(out),
        max_steps=steps,
        per_device_train_batch_size=profile.sft.batch_size,
        gradient_accumulation_steps=profile.sft.grad_accum,
        learning_rate=profile.sft.learning_rate,
        lr_scheduler_type=profile.sft.lr_scheduler,
        warmup_steps=profile.sft.warmup_ratio,
        max_length=profile.max_length,
        completion_only_loss=True,
        gradient_checkpointing=False,
        bf16=False,
        use_cpu=True,
        logging_steps=1,
        save_strategy="no",
        report_to="none",
        seed=profile.seed,
        data_seed=profile.seed,
        include_num_input_tokens_seen="non_padding",
        disable_tqdm=True,
    )
    lora = LoraConfig(
        r=profile.lora.r,
        lora_alpha=profile.lora.alpha,
        lora_dropout=profile.lora.dropout,
        target_modules=profile.lora.target_modules,
        task_type="CAUSAL_LM",
    )
    trainer = SFTTrainer(model=model, args=args, train_dataset=train, processing_class=tokenizer, peft_config=lora)
    started = time.perf_counter()
    trainer.train()
    seconds = time.perf_counter() - started
    tokens = int(trainer.state.num_input_tokens_seen)
    print(json.dumps({"tokens": tokens, "seconds": seconds, "tokens_per_s": tokens / seconds}))


def _child(cmd: list[str], env: dict[str, str]) -> tuple[dict[str, Any], float]:
    """Run a child; (its last stdout JSON line, its peak RSS in MiB)."""
    with tempfile.TemporaryFile("w+") as out:
        proc = subprocess.Popen(cmd, env=env, stdout=out, stderr=subprocess.DEVNULL)
        _, status, usage = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        lines = [ln for ln in out.read().splitlines() if ln.strip()]
    if proc.returncode != 0 or not lines:
        raise SystemExit(f"{cmd[:4]} failed ({proc.returncode}): {lines[-1] if lines else ''}")
    return json.loads(lines[-1]), usage.ru_maxrss / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--keep", action="store_true")
    parser.add_argument("--plain", metavar="DATASET", help=argparse.SUPPRESS)  # child mode (b)
    args = parser.parse_args()
    if args.plain:
        plain(args.plain, args.steps, Path(tempfile.mkdtemp(prefix="plain-trl-")))
        return

    from twin_core.settings import load_settings

    home = Path(tempfile.mkdtemp(prefix="bench-training-"))
    models = Path(os.environ.get("TWIN_LLM_MODELS_DIR") or REPO / ".pytest_cache" / "d" / "twin-llm-models")
    env = {
        **os.environ,
        "TWIN_HOME": str(home),
        "TWIN_LLM_MODELS_DIR": str(models),
        "TWIN_LLM_THREADS": str(args.threads),
        "COMET_API_KEY": "",
        "TWIN_TRAINING_CHECKPOINT_STEPS": str(max(1, args.steps // 2)),
    }
    os.environ.update({k: v for k, v in env.items() if k.startswith("TWIN_")})
    dataset = build_dataset(load_settings(home=home))
    try:
        ours, ours_rss = _child(
            [str(TWIN), "train", "sft", "--dataset", dataset, "--profile", "cpu-tiny", "--max-steps", str(args.steps)],
            env,
        )
        base, base_rss = _child([sys.executable, __file__, "--plain", dataset, "--steps", str(args.steps)], env)
    finally:
        if not args.keep:
            shutil.rmtree(home, ignore_errors=True)
    m = ours["metrics"]
    result = {
        "steps": args.steps,
        "threads": args.threads,
        "train_rows": ours["train_rows"],
        "ours_tokens_per_s": m["tokens_per_s"],
        "plain_tokens_per_s": round(base["tokens_per_s"], 1),
        "ratio": round(m["tokens_per_s"] / base["tokens_per_s"], 3),
        "ours_peak_rss_mib": round(ours_rss),
        "plain_peak_rss_mib": round(base_rss),
        "ours_step_seconds": ours["seconds"],
        "loss": [m["first_loss"], m["last_loss"]],
        "perplexity_base": m["perplexity_base"],
        "perplexity_trained": m["perplexity_trained"],
    }
    print(
        f"ours {result['ours_tokens_per_s']} tokens/s (peak RSS {result['ours_peak_rss_mib']} MiB) vs plain TRL "
        f"{result['plain_tokens_per_s']} tokens/s (peak RSS {result['plain_peak_rss_mib']} MiB): "
        f"ratio {result['ratio']}",
        file=sys.stderr,
    )
    print(json.dumps(result))


if __name__ == "__main__":
    main()
