"""Training test helpers: tiny dataset versions in the CONTRACTS §2 layout, and the converted SmolLM2.

Datasets are written through the artifact store exactly as ``twin datasets build`` writes them
(``datasets/<kind>/<slug>/vNNNN/{train,test}.parquet`` + metadata.json last), from the sample
corpus: an instruction per article/post and the author's own text as the answer.
"""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
SAMPLE = next(
    (p for p in (REPO / "src" / "twin_core" / "demo" / "sample", REPO / "data" / "sample") if p.is_dir()),
    REPO / "data" / "sample",
)
AUTHOR = "Ada Quillfeather"
SLUG = "ada-quillfeather"

# tiny and steady on a shared 2-core machine
TINY_ENV = {
    "TWIN_LLM_THREADS": "1",
    "TWIN_TRAINING_MAX_STEPS": "4",
    "TWIN_TRAINING_CHECKPOINT_STEPS": "2",
    "TWIN_TRAINING_PROFILES_DIR": str(Path(__file__).parent / "profiles"),
    "COMET_API_KEY": "",
}


def sample_rows(n_train: int = 12, n_test: int = 4, answer_chars: int = 300) -> tuple[list[dict], list[dict]]:
    docs = []
    for fname, kind in (("ArticleDocument.json", "articles"), ("PostDocument.json", "posts")):
        for doc in json.loads((SAMPLE / fname).read_text()):
            content = doc["content"]
            text = content.get("Content") or content.get("text") or " ".join(str(v) for v in content.values())
            title = content.get("Title") or text.split(".")[0][:80]
            docs.append((doc["_id"], kind, doc.get("link", ""), title, " ".join(text.split())))
    docs.sort()
    rows = []
    for i, (doc_id, kind, link, title, text) in enumerate(docs[: n_train + n_test]):
        answer = text[:answer_chars].rsplit(" ", 1)[0]
        rows.append(
            {
                "id": f"r{i:03d}",
                "instruction": f"Write a short piece about: {title}",
                "answer": answer,
                "chosen": answer,
                "rejected": "I am an AI language model and cannot say much about that topic.",
                "document_id": doc_id,
                "category": kind,
                "link": link,
                "split": "test" if i >= n_train else "train",
            }
        )
    return [r for r in rows if r["split"] == "train"], [r for r in rows if r["split"] == "test"]


def _parquet(rows: list[dict[str, Any]]) -> bytes:
    import pyarrow as pa
    import pyarrow.parquet as pq

    buf = io.BytesIO()
    pq.write_table(pa.Table.from_pylist(rows), buf)
    return buf.getvalue()


def write_dataset(settings: Any, kind: str, train: list[dict], test: list[dict]) -> str:
    from twin_core.stores.artifacts import open_artifact_store

    cols = ["id", "instruction", "answer", "document_id", "category", "link", "split"]
    if kind == "preference":
        cols = ["id", "instruction", "chosen", "rejected", "document_id", "category", "link", "split"]
    train = [{c: r[c] for c in cols} for r in train]
    test = [{c: r[c] for c in cols} for r in test]
    files = {"train.parquet": _parquet(train)}
    if test:
        files["test.parquet"] = _parquet(test)
    av = open_artifact_store(settings).put_version(
        f"datasets/{kind}/{SLUG}",
        files,
        {"author": AUTHOR, "author_slug": SLUG, "kind": kind, "counts": {"train": len(train), "test": len(test)}},
    )
    return f"{kind}/{SLUG}/{av.version}"


os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
TWIN_BIN_PATH = str(Path(sys.prefix) / "bin" / "twin")


def run_json(cmd: list[str], env: dict[str, str], timeout: float = 900) -> dict[str, Any]:
    """Run a command; its last stdout line parsed as the JSON step result."""
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout, check=False)
    lines = [ln for ln in proc.stdout.splitlines() if ln.strip()]
    assert lines, proc.stderr[-3000:]
    return json.loads(lines[-1])


def killed_after_checkpoint(step: int) -> str:
    """`twin train` that SIGKILLs itself right after uploading its first checkpoint at ``step`` or later: a
    spot node going away at a known point (no cleanup runs), with no race between a poll and the steps."""
    return f"""
import os, signal
from twin_core.training import checkpoints
make = checkpoints.make_callback
def make_callback(store, rid, *args, **kwargs):
    cb = make(store, rid, *args, **kwargs)
    upload = cb.on_save
    def on_save(args, state, control, **kwargs):
        upload(args, state, control, **kwargs)
        if state.global_step >= {step}:
            os.kill(os.getpid(), signal.SIGKILL)
    cb.on_save = on_save
    return cb
checkpoints.make_callback = make_callback
from twin_core.cli.main import main
main()
"""


KILLED_AFTER_FIRST_CHECKPOINT = killed_after_checkpoint(1)

# `twin train` whose plan takes another micro-batch split of the same step, as fit_memory does on a card with
# more or less free memory: 1 sequence x 2 accumulation for tiny-test's 2 x 1. The run id stays the profile's.
OTHER_SPLIT = """
import dataclasses
from twin_core.training import run
def _fit_memory(plan, model):
    stage = plan.profile.sft.model_copy(update={"batch_size": 1, "grad_accum": 2})
    return dataclasses.replace(plan, profile=plan.profile.model_copy(update={"sft": stage})), None
run._fit_memory = _fit_memory
from twin_core.cli.main import main
main()
"""


def tiny_random_profile(folder: Path, source: Path) -> Path:
    """The tiny-test profile on a tiny random Llama (tests/support/tiny_models.py) written under ``folder``."""
    import yaml
    from support.tiny_models import tiny_llama

    base = tiny_llama(source, folder / "tiny-llama")
    profile = yaml.safe_load((Path(__file__).parent / "profiles" / "tiny-test.yaml").read_text())
    profile.update(name="tiny-random", base_model=str(base))
    path = folder / "tiny-random.yaml"
    path.write_text(yaml.safe_dump(profile))
    return path
