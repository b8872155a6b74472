"""Training benchmark: `twin train sft` (cpu-tiny) vs a plain TRL + peft script, same data and settings.

    .venv/bin/python benchmarks/training.py [--steps 10] [--rounds 2] [--threads 2] [--profile cpu-tiny] [--keep]
    .venv/bin/python benchmarks/training.py --device gpu [--shape 1b]   # a lent GPU: gpu-8b profile,
                                                  # random-init Llama of that shape (no weights needed)
    .venv/bin/python benchmarks/training.py --profile gpu-shape --shape tiny  # that path's CPU dry run
    .venv/bin/python benchmarks/training.py --device gpu --steps 4 --torch-profile DIR  # ours only, once, with
                                                  # torch.profiler on step 1 and steps 3-4: where the time goes

One run, two child processes in turn, on the same instruct dataset version (built from the sample
corpus: one row per article/post, the author's own text as the answer), the same converted
SmolLM2-135M, the same LoRA, batch, max_length, learning rate, seed and step count:

(a) ours: ``twin train sft --profile cpu-tiny --max-steps N`` — the real step, with checkpoints to the
    artifact store every N/2 steps and Comet offline logging inside the training loop;
(b) plain: the minimal TRL script anyone would write (``SFTTrainer`` + ``LoraConfig``), no checkpoints,
    no tracking.

Tokens/s = non-padding input tokens seen / wall time of ``trainer.train`` (both sides measure the same
thing); ratio = ours / plain (goal >= 1.3: ours packs examples padding-free, plain pads batches); the
held-out perplexity after N steps is printed for both. Peak RSS of each child from ``wait4``. Prints one JSON line.
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
FIT_KEYS = (
    "micro_batch",
    "grad_accum",
    "gradient_checkpointing",
    "memory_estimate_gib",
    "memory_budget_gib",
    "peak_memory_gib",
)
# The console script where the project is installed; on a lent device the source is only on PYTHONPATH.
TWIN = (
    [str(Path(sys.prefix) / "bin" / "twin")]
    if (Path(sys.prefix) / "bin" / "twin").is_file()
    else [sys.executable, "-m", "twin_core.cli.main"]
)


def build_dataset(settings: Any, full_text: bool = False, repeat: int = 1) -> str:
    """An instruct dataset version (CONTRACTS §2 layout) from the sample corpus: answers cut at 700 characters,
    or whole documents (``full_text``); ``repeat`` copies of every training row (GPU runs: full batches)."""
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
                    "answer": text if full_text else text[:700].rsplit(" ", 1)[0],
                    "document_id": doc["_id"],
                    "category": category,
                    "link": doc.get("link", ""),
                }
            )
    rows.sort(key=lambda r: r["id"])
    n_test = max(2, len(rows) // 10)
    files = {}
    train = [{**r, "id": f"{r['id']}-{i}"} if i else r for i in range(repeat) for r in rows[n_test:]]
    for split, part in (("train", train), ("test", rows[:n_test])):
        buf = io.BytesIO()
        pq.write_table(pa.Table.from_pylist([{**r, "split": split} for r in part]), buf)
        files[f"{split}.parquet"] = buf.getvalue()
    av = open_artifact_store(settings).put_version(
        "datasets/instruct/ada-quillfeather", files, {"author": "Ada Quillfeather", "kind": "instruct"}
    )
    return f"instruct/ada-quillfeather/{av.version}"


def plain(dataset: str, steps: int, out: Path, profile_name: str) -> None:
    """(b) The plain TRL + peft script: what one writes from the TRL docs, nothing else (padded batches)."""
    import torch
    from datasets import Dataset
    from peft import LoraConfig
    from transformers import AutoModelForCausalLM, AutoTokenizer, BitsAndBytesConfig, set_seed
    from trl import SFTConfig, SFTTrainer

    from twin_core.llm.base_model import resolve_base
    from twin_core.llm.rows import sft_example
    from twin_core.settings import get_settings
    from twin_core.training.data import load_training_data
    from twin_core.training.memory_fit import peak_gib
    from twin_core.training.profiles import load_profile
    from twin_core.training.step_clock import step_clock

    settings = get_settings()
    if settings.llm.threads:
        torch.set_num_threads(settings.llm.threads)
    profile = load_profile(settings, profile_name)  # the same numbers, read from the same file
    td = load_training_data(settings, dataset, "instruct")
    location = resolve_base(settings, profile.base_model)
    tokenizer = AutoTokenizer.from_pretrained(location)
    tokenizer.pad_token = "<|endoftext|>"
    gpu = profile.device == "gpu"
    kwargs: dict[str, Any] = {"dtype": torch.bfloat16 if profile.precision == "bf16" else torch.float32}
    if profile.quantization:  # the profile's QLoRA, as the TRL docs write it
        kwargs["quantization_config"] = BitsAndBytesConfig(
            load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_compute_dtype=torch.bfloat16
        )
    model = AutoModelForCausalLM.from_pretrained(location, **kwargs)
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
        gradient_checkpointing=profile.gradient_checkpointing,
        bf16=profile.precision == "bf16",
        use_cpu=not gpu,
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
    clock = step_clock()  # the same step timer as ours (a measurement: it changes nothing in training)
    trainer.add_callback(clock)
    started = time.perf_counter()
    trainer.train()
    seconds = time.perf_counter() - started
    tokens = int(trainer.state.num_input_tokens_seen)
    ppl = _heldout_perplexity(trainer.model, tokenizer, td, profile.max_length)
    print(json.dumps({"tokens": tokens, "seconds": seconds, "tokens_per_s": tokens / seconds, "perplexity": ppl,
                      "peak_memory_gib": peak_gib(), "gradient_checkpointing": profile.gradient_checkpointing,
                      **clock.summary()}))  # fmt: skip


def _heldout_perplexity(model: Any, tokenizer: Any, td: Any, max_length: int) -> float | None:
    """The held-out number ``twin train`` prints, computed the same way (64 test rows, served prompt)."""
    from twin_core.llm.perplexity import perplexity
    from twin_core.llm.rows import prompt_and_answer_text, sft_example

    pairs = [prompt_and_answer_text(tokenizer, sft_example(r, td.author)) for r in td.test[:64]]
    ppl = perplexity(model, tokenizer, pairs, max_length=max_length)
    return round(ppl, 3) if ppl else None


def gpu_profile(home: Path, shape: str, device: str, tokenizer: str | None = None, overrides: list[str] = ()) -> str:
    """A random-init Llama of ``shape`` with the SmolLM2 tokenizer (no weights reach a lent device) and a
    copy of the gpu-8b profile pointing at it, with ``overrides`` (``key.sub=YAML value``, e.g.
    ``sft.batch_size=8``, ``quantization=null``) applied; ``--device cpu --shape tiny`` is the dry run."""
    import yaml
    from random_model import save_random_llama

    base = save_random_llama(home / f"base-{shape}", shape, tokenizer)
    profile = yaml.safe_load((REPO / "configs" / "training" / "gpu-8b.yaml").read_text())
    profile.update(name=f"bench-{shape}", base_model=str(base))
    if device != "gpu":  # the dry run: same structure on CPU
        profile.update(
            device="cpu", precision="fp32", quantization=None, gradient_checkpointing=False, fit_memory=False
        )
    for item in overrides:  # both sides read this file: the same settings on both
        key, _, value = item.partition("=")
        *parents, leaf = key.split(".")
        node = profile
        for part in parents:
            node = node[part]
        node[leaf] = yaml.safe_load(value)
    path = home / f"bench-{shape}.yaml"
    path.write_text(yaml.safe_dump(profile))
    return str(path)


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


def _args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--profile", default="cpu-tiny", help="the profile both sides read (cpu runs)")
    parser.add_argument("--device", choices=("cpu", "gpu"), default="cpu", help="gpu: random-init model, gpu-8b")
    parser.add_argument("--shape", choices=("1b", "tiny"), default="1b", help="--device gpu: the model's shape")
    parser.add_argument("--tokenizer", help="--device gpu: a tokenizer folder (a device without the packaged GGUF)")
    parser.add_argument("--full-text", action="store_true", help="whole documents as answers (not 700 characters)")
    parser.add_argument("--repeat", type=int, default=1, help="copies of every training row (same on both sides)")
    parser.add_argument("--peak-tflops", type=float, default=0.0, help="the device's bf16 peak: MFU is printed")
    parser.add_argument("--rounds", type=int, default=2, help="ours then plain, this many times (alternating)")
    parser.add_argument("--keep", action="store_true")
    parser.add_argument("--torch-profile", type=Path, metavar="DIR",
                        help="ours only, once, no ratio: torch.profiler records step 1 and steps 3-4 into DIR "
                        "(TWIN_TRAINING_TORCH_PROFILE; needs --steps 4 or more)")  # fmt: skip
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="GPU runs: override the gpu-8b profile copy, e.g. sft.batch_size=8, quantization=null, "
                        "gradient_checkpointing=false (both sides)")  # fmt: skip
    parser.add_argument("--plain", metavar="DATASET", help=argparse.SUPPRESS)  # child mode (b)
    return parser.parse_args()


def main() -> None:
    args = _args()
    if args.plain:
        with tempfile.TemporaryDirectory(prefix="plain-trl-") as out:  # TRL's output_dir: nothing kept
            plain(args.plain, args.steps, Path(out), args.profile)
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
    dataset = build_dataset(load_settings(home=home), args.full_text, args.repeat)
    profile = args.profile
    if args.device == "gpu" or args.profile == "gpu-shape":
        profile = gpu_profile(home, args.shape, args.device, args.tokenizer, args.set)
    ours_cmd = [*TWIN, "train", "sft", "--dataset", dataset, "--profile", profile, "--max-steps", str(args.steps)]
    base_cmd = [sys.executable, __file__, "--plain", dataset, "--steps", str(args.steps), "--profile", profile]
    rounds: list[tuple[dict[str, Any], float, dict[str, Any], float]] = []
    if args.torch_profile:
        env["TWIN_TRAINING_TORCH_PROFILE"] = str(args.torch_profile.resolve())
        try:
            profiled(args, _child(ours_cmd, env)[0])
        finally:
            shutil.rmtree(home, ignore_errors=True)
        return
    try:
        # ours, plain, ours, plain...: a shared machine's speed drifts by 10-20 % over minutes, and
        # alternating puts the same drift on both sides
        for _ in range(args.rounds):
            rounds.append((*_child(ours_cmd, env), *_child(base_cmd, env)))
    finally:
        if not args.keep:
            shutil.rmtree(home, ignore_errors=True)
    report(args, rounds)


def profiled(args: argparse.Namespace, ours: dict[str, Any]) -> None:
    """--torch-profile: ours' run under the profiler (its speed is the profiler's, not a result) and the
    records' summaries: wall and device-busy seconds of steps 3-4 and of step 1, the top operators."""
    found = sorted(args.torch_profile.glob("sft-*/summary.json"))  # the run's folder: sft-<run id>
    if not found:
        raise SystemExit(f"no profile in {args.torch_profile}: the run needs --steps 4 or more")
    summary = json.loads(found[-1].read_text())
    m = ours["metrics"]
    result = {
        "device": args.device,
        "profile": _label(args),
        "overrides": args.set,
        "steps": args.steps,
        "tokens_per_s_under_profiler": m["tokens_per_s"],
        **_fit_fields(m),
        "torch_profile": _short(summary),
    }
    first = found[-1].parent / "first-step" / "summary.json"
    if first.is_file():  # step 1, recorded on its own: what it pays once
        result["torch_profile_first_step"] = _short(json.loads(first.read_text()))
    print(json.dumps(result))


def _utilisation(args: argparse.Namespace, ours: tuple[float, dict[str, Any]],
                 plain: tuple[float, dict[str, Any]]) -> dict[str, float]:  # fmt: skip
    """Each side's share of the GPU's bf16 peak, two ways, from (tokens/s, its JSON). ``mfu``: the usual 6 x
    parameters per trained token (the convention of the issue's goal and of the runs before). ``hfu``: the FLOPs
    the GPU really ran. LoRA computes no gradient for the frozen weights, so a step is the forward (2 x) and the
    backward to the inputs (2 x), plus one more forward where recomputation is on: 6 x overstates a run without
    it by 1.5 x. Ours without fit_memory recomputes as the profile says, which the plain side reports."""
    params = {"1b": 1.07e9, "tiny": 0.0}[args.shape]
    peak = args.peak_tflops * 1e12
    profile_recompute = plain[1].get("gradient_checkpointing")
    out = {}
    for name, (tps, metrics) in (("ours", ours), ("plain", plain)):
        recompute = metrics.get("gradient_checkpointing", profile_recompute)
        out[f"{name}_mfu"] = round(6 * params * tps / peak, 4)
        if recompute is not None:
            out[f"{name}_hfu"] = round((6 if recompute else 4) * params * tps / peak, 4)
    return out


def _fit_fields(metrics: dict[str, Any]) -> dict[str, Any]:
    """GPU: ours' micro-batch plan (fit_memory), its estimate and the measured peak, from ours' metrics."""
    return {k: metrics[k] for k in FIT_KEYS if k in metrics}


def _short(summary: dict[str, Any]) -> dict[str, Any]:
    return {**summary, "top": summary["top"][:12], "top_kernels": summary.get("top_kernels", [])[:8]}


def _label(args: argparse.Namespace) -> str:
    return args.profile if args.device == "cpu" else f"gpu-8b@{args.shape}"


def report(args: argparse.Namespace, rounds: list[tuple[dict[str, Any], float, dict[str, Any], float]]) -> None:
    ours, _, base, _ = rounds[-1]
    m = ours["metrics"]
    ours_tps = [r[0]["metrics"]["tokens_per_s"] for r in rounds]
    plain_tps = [r[2]["tokens_per_s"] for r in rounds]
    # every round trains on the same tokens: the rate over all rounds is the harmonic mean of the rounds'
    ours_all, plain_all = (len(t) / sum(1 / x for x in t) for t in (ours_tps, plain_tps))
    result = {
        "device": args.device,
        "profile": _label(args),
        "overrides": args.set,
        "steps": args.steps,
        "threads": args.threads,
        "rounds": len(rounds),
        "train_rows": ours["train_rows"],
        "ours_tokens_per_s": round(ours_all, 1),
        "plain_tokens_per_s": round(plain_all, 1),
        "ratio": round(ours_all / plain_all, 3),
        "ratio_per_round": [round(o / p, 3) for o, p in zip(ours_tps, plain_tps, strict=True)],
        "tokens_per_s_per_round": [[round(o, 1), round(p, 1)] for o, p in zip(ours_tps, plain_tps, strict=True)],
        "ours_peak_rss_mib": round(max(r[1] for r in rounds)),
        "plain_peak_rss_mib": round(max(r[3] for r in rounds)),
        "ours_step_seconds": ours["seconds"],
        "loss": [m["first_loss"], m["last_loss"]],
        "perplexity_base": m["perplexity_base"],
        "perplexity_trained_ours": m["perplexity_trained"],  # padding-free (the profile's setting)
        "perplexity_trained_plain": base["perplexity"],  # padded batches
        **_fit_fields(m),
        "plain_peak_memory_gib": base.get("peak_memory_gib"),
        # the first step against the steady one, both sides (goal: ours' first step no dearer than plain's)
        "first_step_s": [m.get("first_step_s"), base.get("first_step_s")],
        "median_step_s": [m.get("median_step_s"), base.get("median_step_s")],
    }
    if args.peak_tflops and args.device == "gpu":
        result.update(_utilisation(args, (ours_all, m), (plain_all, base)))
    print(
        f"ours {result['ours_tokens_per_s']} tokens/s (peak RSS {result['ours_peak_rss_mib']} MiB) vs plain TRL "
        f"{result['plain_tokens_per_s']} tokens/s (peak RSS {result['plain_peak_rss_mib']} MiB): "
        f"ratio {result['ratio']} (rounds: {result['ratio_per_round']}); "
        f"held-out perplexity after {args.steps} steps: ours "
        f"{result['perplexity_trained_ours']} vs plain {result['perplexity_trained_plain']} "
        f"(base {result['perplexity_base']})",
        file=sys.stderr,
    )
    print(json.dumps(result))


if __name__ == "__main__":
    main()
