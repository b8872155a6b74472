"""Evaluation/deploy test helpers: a tiny dataset version and registered model versions (CONTRACTS §2/§3)."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

AUTHOR = "Ada Quillfeather"
SLUG = "ada-quillfeather"

ROWS = [
    (
        "r1",
        "How do you keep a Kafka consumer from falling behind?",
        "Batch the polls, commit offsets late, and watch the consumer lag metric before it pages you.",
        "doc-kafka",
        "https://ada.example/kafka",
    ),
    (
        "r2",
        "Why do you prefer Postgres for queues?",
        "Postgres gives me SKIP LOCKED, transactions and one "
        "less system to run, which beats a dedicated broker for small teams.",
        "doc-pg",
        "https://ada.example/pg",
    ),
    (
        "r3",
        "What is your advice on feature stores?",
        "Start with a table and a cron job; a feature store "
        "earns its place only when several models share the same features.",
        "doc-fs",
        "https://ada.example/fs",
    ),
]


def _parquet(rows: list[dict[str, Any]]) -> bytes:
    import pyarrow as pa
    import pyarrow.parquet as pq

    buf = io.BytesIO()
    pq.write_table(pa.Table.from_pylist(rows), buf)
    return buf.getvalue()


def write_dataset(settings: Any, *, empty_test: bool = False, held_out: int | None = None) -> str:
    """An instruct version of AUTHOR: ROWS as the test split (the first ``held_out`` of them), train alike."""
    from twin_core.stores.artifacts import open_artifact_store

    rows = [
        {
            "id": i,
            "instruction": q,
            "answer": a,
            "document_id": d,
            "category": "articles",
            "link": link,
            "split": "test",
        }
        for i, q, a, d, link in ROWS[:held_out]
    ]
    train = [{**r, "id": "t" + r["id"], "split": "train"} for r in rows]
    files = {"train.parquet": _parquet(train)}
    if not empty_test:
        files["test.parquet"] = _parquet(rows)
    av = open_artifact_store(settings).put_version(
        f"datasets/instruct/{SLUG}",
        files,
        {
            "author": AUTHOR,
            "author_slug": SLUG,
            "kind": "instruct",
            "counts": {"train": len(train), "test": 0 if empty_test else len(rows)},
        },
    )
    return f"instruct/{SLUG}/{av.version}"


def fake_model_folder(root: Path, name: str) -> Path:
    """A model folder the registry accepts (merged/config.json); tests inject their own loader."""
    folder = root / name
    (folder / "merged").mkdir(parents=True, exist_ok=True)
    (folder / "merged" / "config.json").write_text(json.dumps({"name": name}))
    return folder


def register(settings: Any, folder: Path, dataset: str, base_model: str) -> Any:
    from twin_core.stores.registry import open_registry

    return open_registry(settings).register(
        AUTHOR, folder, {"base_model": base_model, "dataset_versions": [dataset], "kind": "sft"}
    )


class FakeLLM:
    """Answers with a fixed text per model; counts calls. ``fail`` raises like a dead endpoint."""

    def __init__(self, version: str, answers: dict[str, str] | None = None, default: str = "", fail: bool = False):
        self.model_version = version
        self.answers = answers or {}
        self.default = default
        self.fail = fail
        self.calls = 0

    def count_tokens(self, text: str) -> int:
        return max(1, len(text) // 4)

    def truncate(self, text: str, max_tokens: int) -> str:
        return text[: max_tokens * 4]

    def chat(self, messages: list[dict[str, str]], *, max_new_tokens: int, temperature: float = 0.0, timeout_s=None):
        from twin_core.errors import BackendUnavailable
        from twin_core.llm.base import Generation

        self.calls += 1
        if self.fail:
            raise BackendUnavailable("judge endpoint: connection refused")
        user = messages[-1]["content"]
        text = next((a for q, a in self.answers.items() if q in user), self.default)
        return Generation(text, 10, 10, self.model_version, 0.0)


def tiny_model_folder(root: Path, name: str, settings: Any, seed: int = 0) -> Path:
    """A real, tiny causal LM (Llama architecture, 2 layers, width 32) with SmolLM2's tokenizer and
    chat template: loads and generates in well under a second, so model code paths run for real."""
    import torch
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    from twin_core.llm.loading import resolve_source

    folder = root / name
    merged = folder / "merged"
    if (merged / "config.json").is_file():
        return folder
    source = resolve_source(settings)
    kwargs = {"gguf_file": source.gguf_file} if source.gguf_file else {}
    tokenizer = AutoTokenizer.from_pretrained(source.location, local_files_only=True, **kwargs)
    torch.manual_seed(seed)
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=2,
        num_key_value_heads=2,
        max_position_embeddings=2048,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        tie_word_embeddings=True,
    )
    LlamaForCausalLM(config).save_pretrained(merged)
    tokenizer.save_pretrained(merged)
    return folder


def setup_tiny_candidate(settings: Any, root: Path) -> str:
    """A dataset version and a registered candidate (tiny real model) whose base is another tiny model."""
    dataset = write_dataset(settings)
    base = tiny_model_folder(root, "tiny-base", settings, seed=1)
    cand = tiny_model_folder(root, "tiny-cand", settings, seed=2)
    return register(settings, cand, dataset, str(base / "merged")).ref


if __name__ == "__main__":  # used by the DAG tests (Airflow env): python eval_fixtures.py ROOT -> the ref
    import sys

    from twin_core.settings import load_settings

    print(setup_tiny_candidate(load_settings(), Path(sys.argv[1])))
