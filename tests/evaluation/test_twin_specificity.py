"""Issue 21, "Done when": the two-author sample shows specificity. Each author's own twin beats the other
author's twin on the author's held-out text.

This runs the product's path on a fresh embedded home: both sample backups are imported and cleaned, with
chunks embedded by ``HashEmbedder`` so no model is loaded. ``build_author`` runs once per author; its split
holds out about 1 in 6 documents, by link. Each author gets one SFT with the real training code and the
twin is promoted to production. Then ``evaluate`` runs per author: it scores the author's held-out text
under the own twin (the candidate), the base model and every other author's production twin.

The model learns from scratch. It is a 2-layer, 32-wide random Llama with a 2k-token vocabulary learnt
from the sample corpus, and its output layer is trained in full beside a full-rank LoRA. SmolLM2-135M
with LoRA did not separate the authors in the steps a CPU test can afford. On CPU, its 49k-token
vocabulary alone costs about 3 ms for each trained position.
"""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path
from typing import Any

import pytest
import yaml
from support import SAMPLE_DIR

AUTHORS = ("Ada Quillfeather", "Oskar Brennmoor")
# On the own held-out text, the own twin's perplexity is at most MARGIN x the other twin's.
# Measured with this profile: 0.796 (Ada) and 0.684 (Oskar); over five other seeds, 0.72-0.85 and 0.65-0.76.
MARGIN = 0.9
ENV = {
    "TWIN_LLM_THREADS": "1",  # one torch thread: the same figures on every run, busy machine or not
    "TWIN_RAG_CONTEXT_TOKENS": "32",  # a short retrieved context leaves the answer most of each example
    "TWIN_DATASETS_MIN_TEST_ROWS": "0",  # hold out 1 in 6 documents, not topped up to the evaluation's 20 rows
    "COMET_API_KEY": "",  # Comet offline
}
PROFILE = {
    "name": "tiny-author",
    "description": "a tiny random Llama with a small vocabulary, trained from scratch (tests)",
    "device": "cpu",
    "max_length": 1024,  # whole examples: the longest prompt and answer is about 1000 tokens
    "packing": True,
    "seed": 42,
    "checkpoint_steps": 1000,  # no checkpoint: a run this short is rerun, not resumed
    "lora": {
        "r": 32,  # the model's width: full rank
        "alpha": 32,
        "dropout": 0.0,
        "target_modules": ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"],
        "modules_to_save": ["lm_head"],  # a random output layer must learn too, not only be steered
    },
    # 20 steps of 2 packed sequences: ~1.3 epochs of Ada's rows, ~2.5 of Oskar's. A rate of 0.05 diverged
    # for one seed in three.
    "sft": {"max_steps": 20, "batch_size": 2, "learning_rate": 0.03, "lr_scheduler": "linear"},
}


@pytest.fixture
def home(twin_home: Path, monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest) -> Any:
    """Settings of a fresh home with ENV and the converted SmolLM2 (shape, chat template) of the other suites."""
    models = Path(request.config.cache.mkdir("twin-llm-models"))
    for key, value in {**ENV, "TWIN_LLM_MODELS_DIR": str(models)}.items():
        monkeypatch.setenv(key, value)
    from twin_core.settings import get_settings

    get_settings.cache_clear()
    return get_settings()


def build_datasets(settings: Any) -> tuple[dict[str, str], list[str]]:
    """Both sample authors imported, cleaned and embedded, then one dataset build each.
    Returns ({author: instruct version}, the texts of every document)."""
    from support.datasets import HashEmbedder, write_cleaned_docs

    from twin_core.datasets.build import BuildOptions, build_author
    from twin_core.domain.documents import Category
    from twin_core.stores.warehouse import open_warehouse
    from twin_core.stores.warehouse_io import import_paths

    warehouse = open_warehouse(settings)
    import_paths(warehouse, [SAMPLE_DIR, SAMPLE_DIR / "second_author"])
    docs = [d for c in Category for d in warehouse.iter_documents(c)]
    embedder = HashEmbedder(settings.embedding_model_id)
    write_cleaned_docs(settings, docs, embedder)
    opts = BuildOptions(max_rejected=0)  # instruct rows only: no preference pairs, no model
    versions = {a: build_author(settings, a, opts, embedder=embedder).versions["instruct"] for a in AUTHORS}
    return versions, [" ".join(str(v) for v in d.content.values()) for d in docs]


def assert_split_by_document(settings: Any, version: str) -> None:
    """No document on both sides, and ceil(test_percent %) of the documents held out."""
    from twin_core.datasets.versions import load_dataset_version

    dataset = load_dataset_version(settings, version)
    train = {r["link"] for r in dataset.rows("train")}
    test = {r["link"] for r in dataset.rows("test")}
    assert not train & test
    assert len(test) == math.ceil(len(train | test) * settings.datasets.test_percent / 100)


def write_profile(settings: Any, texts: list[str], folder: Path) -> Path:
    """PROFILE on a tiny random Llama whose vocabulary is learnt from ``texts`` (both authors alike)."""
    from support.tiny_models import small_vocabulary, tiny_llama

    from twin_core.llm.base_model import resolve_base

    source = Path(resolve_base(settings, "packaged"))
    base = tiny_llama(source, folder / "tiny-llama", vocabulary=small_vocabulary(source, folder / "vocab", texts))
    path = folder / "tiny-author.yaml"
    path.write_text(yaml.safe_dump({**PROFILE, "base_model": str(base)}))
    return path


def train_twins(settings: Any, versions: dict[str, str], profile: Path) -> dict[str, str]:
    """One SFT per author, each promoted to its author's production twin: {author: model version}."""
    from twin_core.stores.registry import open_registry
    from twin_core.training.run import run_training

    twins = {}
    for author, version in versions.items():
        twins[author] = run_training(settings, "sft", version, profile_name=str(profile))["model"]
        open_registry(settings).set_stage(twins[author], "production", "twin specificity test")
    return twins


def perplexities(settings: Any, twin: str) -> dict[str, float]:
    """``evaluate``'s perplexities of the author's held-out text: candidate, base, twin:<other author>."""
    from twin_core.evaluation.config import load_eval_config
    from twin_core.evaluation.run import Tools, evaluate

    # 8 to 10 held-out rows per author; short answers (not asserted on); whole held-out texts scored
    config = dataclasses.replace(load_eval_config(settings), min_rows=5, max_new_tokens=8, perplexity_max_length=2048)
    return evaluate(settings, twin, "base", tools=Tools(), config=config).perplexity


def test_each_twin_beats_the_other_authors_twin_on_its_authors_held_out_text(home: Any, tmp_path: Path) -> None:
    versions, texts = build_datasets(home)
    for version in versions.values():
        assert_split_by_document(home, version)
    twins = train_twins(home, versions, write_profile(home, texts, tmp_path))
    figures = {author: perplexities(home, twin) for author, twin in twins.items()}
    for author, ppl in figures.items():
        (other,) = [v.split("/")[0] for a, v in twins.items() if a != author]
        own, others = ppl["candidate"], ppl[f"twin:{other}"]
        print(f"{author}: own {own:.1f}, {other} {others:.1f} ({own / others:.3f}), base {ppl['base']:.1f}")
        assert own <= MARGIN * others, figures
        assert own < ppl["base"] / 2, figures  # the twin did learn its author, not only less of the other
