"""Train as you serve, and author contrast (issue 21): instruct rows carry retrieved context from the
author's *other* documents; preference pairs are length-matched (model) or another author's nearest
passage (other_author); decontamination ignores lines recurring across documents; the metadata says
what each filter removed and why, and what each kind of pair adds.

The feature store holds the sample authors' cleaned documents and paragraph chunks embedded by
``HashEmbedder`` (deterministic, no model download), searched with the serving's ``search_chunks``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from support.datasets import HashEmbedder, write_cleaned_docs

from twin_core.datasets.build import BuildOptions, build_author
from twin_core.datasets.versions import load_dataset_version

AUTHOR = "Ada Quillfeather"


@pytest.fixture
def embedded_home(settings: Any, warehouse: Any, sample_dir: Path) -> Any:
    """Every sample author (Ada and each further backup folder), cleaned and embedded."""
    from twin_core.domain.documents import Category
    from twin_core.stores.warehouse_io import import_paths

    folders = [sample_dir, *sorted(d for d in sample_dir.iterdir() if (d / "UserDocument.json").is_file())]
    import_paths(warehouse, folders)
    docs = [d for c in Category for d in warehouse.iter_documents(c)]
    write_cleaned_docs(settings, docs, HashEmbedder(settings.embedding_model_id))
    return settings


def _all(settings: Any, version_id: str) -> list[dict]:
    v = load_dataset_version(settings, version_id)
    return v.rows("train") + v.rows("test")


class _EchoLLM:
    """A backend that answers exactly ``max_new_tokens`` words (one token per word) and records prompts."""

    model_version = "echo-1"

    def __init__(self) -> None:
        self.prompts: list[list[dict]] = []

    def count_tokens(self, text: str) -> int:
        return len(text.split())

    def truncate(self, text: str, max_tokens: int) -> str:
        return " ".join(text.split()[:max_tokens])

    def chat(self, messages: list[dict], max_new_tokens: int = 64, temperature: float = 0.0) -> Any:
        from twin_core.llm.base import Generation

        self.prompts.append(messages)
        text = " ".join(["generic"] * max_new_tokens)
        return Generation(text, prompt_tokens=1, completion_tokens=max_new_tokens, model_version="echo-1", seconds=0.0)


def test_rows_carry_context_from_other_documents_never_their_own_nor_a_held_out_one(embedded_home: Any) -> None:
    embedder = HashEmbedder(embedded_home.embedding_model_id)
    built = build_author(embedded_home, AUTHOR, BuildOptions(seed=3, max_rejected=0), embedder=embedder)
    version = load_dataset_version(embedded_home, built.versions["instruct"])
    train, test = version.rows("train"), version.rows("test")
    held_out_links = {r["link"] for r in test}
    for row in train + test:
        assert 1 <= len(row["context"]) <= embedded_home.rag.top_k
        assert len(row["context_links"]) == len(row["context"])
        assert row["link"] not in row["context_links"]  # never the row's own document
    for row in train:
        assert not held_out_links & set(row["context_links"])  # the test split never leaks into training
    context = version.metadata["filters"]["context"]
    budget = embedded_home.rag.context_tokens
    assert context == {"k": 5, "max_tokens": budget, "rows_with_context": len(train + test), "rows_without_context": 0}
    assert all(sum(len(t) for t in r["context"]) <= budget * 4 for r in train + test)

    assert all(r["why"] for r in version.metadata["removed"])
    filters = version.metadata["filters"]
    steps = ("dropped", "filters", "deduplication", "decontamination")
    counts = {(step, reason): n for step in steps for reason, n in filters[step].items()}
    assert {(r["step"], r["reason"]): r["rows"] for r in version.metadata["removed"]} == counts


def test_a_small_context_budget_keeps_the_best_chunk_cut_to_whole_sentences(embedded_home: Any) -> None:
    from twin_core.settings import updated

    settings = updated(embedded_home, datasets_context_tokens=20)
    embedder = HashEmbedder(settings.embedding_model_id)
    built = build_author(settings, AUTHOR, BuildOptions(seed=3, max_rejected=0), embedder=embedder)
    rows = _all(settings, built.versions["instruct"])
    assert all(len(r["context"]) <= 1 and sum(len(t) for t in r["context"]) <= 80 for r in rows)
    assert sum(1 for r in rows if r["context"]) > len(rows) // 2


def test_model_pairs_are_length_matched_and_prompted_with_the_rows_context(embedded_home: Any) -> None:
    from twin_core.settings import updated

    llm = _EchoLLM()
    settings = updated(embedded_home, datasets_rejected_max_new_tokens=40)
    opts = BuildOptions(seed=3, max_rejected=6)
    embedder = HashEmbedder(settings.embedding_model_id)
    built = build_author(settings, AUTHOR, opts, open_model=lambda: llm, embedder=embedder)
    pairs = _all(settings, built.versions["preference"])
    model = [p for p in pairs if p["rejected_kind"] == "model"]
    assert len(model) == 6
    assert {p["split"] for p in model} == {"train", "test"}
    for p in model:
        assert len(p["chosen"]) >= 100 and llm.count_tokens(p["chosen"]) <= 40
        assert llm.count_tokens(p["rejected"]) == llm.count_tokens(p["chosen"])  # the same token budget
        assert p["context"]
    assert all("<source id=" in m[1]["content"] for m in llm.prompts)  # the served prompt, with its context
    meta = load_dataset_version(settings, built.versions["preference"]).metadata
    kinds = meta["pairs"]["kinds"]
    assert kinds["model"]["pairs"] == 6
    assert kinds["model"]["chosen_tokens_mean"] == kinds["model"]["rejected_tokens_mean"]


def test_contrast_pairs_reject_another_authors_nearest_passage(embedded_home: Any) -> None:
    from twin_core.datasets.build import read_cleaned
    from twin_core.stores.warehouse import open_warehouse

    others = [u.full_name for u in open_warehouse(embedded_home).users() if u.full_name != AUTHOR]
    assert others == ["Oskar Brennmoor"]  # the sample corpus's second author (sample/second_author)
    other_text = "\n".join(d.content for name in others for d in read_cleaned(embedded_home, name))
    opts = BuildOptions(seed=3, max_rejected=5)
    built = build_author(embedded_home, AUTHOR, opts, embedder=HashEmbedder(embedded_home.embedding_model_id))
    pairs = _all(embedded_home, built.versions["preference"])
    assert pairs and {p["rejected_kind"] for p in pairs} == {"other_author"}  # no model given: contrast only
    for p in pairs:
        assert p["rejected_author"] in others
        assert p["rejected"] in other_text  # the other author's own words, cut to whole sentences
        assert len(p["rejected"]) <= len(p["chosen"]) + 8  # the chosen text's budget (~4 characters a token)
    meta = load_dataset_version(embedded_home, built.versions["preference"]).metadata
    assert meta["pairs"]["kinds"]["other_author"]["pairs"] == len(pairs)
    assert sum(meta["pairs"]["kinds"]["other_author"]["authors"].values()) == len(pairs)
    assert meta["pairs"]["kinds"]["model"] == {"pairs": 0}


def test_contrast_only_pairs_open_no_model(embedded_home: Any) -> None:
    def no_model() -> Any:
        raise AssertionError("--pair-kinds other_author must not open a model")

    opts = BuildOptions(seed=3, max_rejected=5, pair_kinds=("other_author",))
    embedder = HashEmbedder(embedded_home.embedding_model_id)
    built = build_author(embedded_home, AUTHOR, opts, open_model=no_model, embedder=embedder)
    pairs = _all(embedded_home, built.versions["preference"])
    assert len(pairs) == 5 and {p["rejected_kind"] for p in pairs} == {"other_author"}
    both = build_author(embedded_home, AUTHOR, BuildOptions(seed=3, max_rejected=5), embedder=embedder)
    assert both.versions["preference"] != built.versions["preference"]  # the kinds are part of the snapshot


def test_unknown_pair_kind_is_a_clear_error(twin: Any, settings: Any) -> None:
    run = twin("datasets", "build", "--pair-kinds", "model,nonsense")
    assert run.returncode == 3
    assert "--pair-kinds 'model,nonsense': expected one or both of model, other_author" in run.result["error"]
