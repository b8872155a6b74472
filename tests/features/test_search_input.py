"""`twin rag search` and `twin features run --author` on the input a user types: a clear error or a said reason,
never a traceback or a silent empty answer."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from twin_core.domain.ids import user_id

ADA = "Ada Quillfeather"


def _error(run: Any, step: str = "rag.search") -> str:
    assert (run.returncode, run.result["kind"], run.result["step"]) == (3, "input", step), run.stderr[-2000:]
    return run.result["error"]


def test_undecodable_bytes_in_the_query_are_bad_input(twin: Any, twin_home: Path) -> None:
    # a non-UTF-8 byte from the shell reached the tokenizer: TypeError traceback, exit 1 "unexpected"
    run = twin("rag", "search", "\udcff bad")  # what Python makes of the argument b"\xff bad"
    assert _error(run) == "query is not valid UTF-8 text (undecodable byte at character 0)"


def test_a_query_over_the_limit_is_refused_as_rag_query_refuses_it(twin: Any, twin_home: Path) -> None:
    # was searched with all but the model's first 256 tokens silently dropped
    run = twin("rag", "search", "x" * 2001)
    assert _error(run) == "query is 2001 characters; the limit is 2000 (TWIN_SERVE_MAX_QUERY_CHARS)"


def test_a_search_before_any_featurizing_says_what_to_run(twin: Any, twin_home: Path) -> None:
    run = twin("rag", "search", "hello")  # was `"hits": []`, exit 0, and not a word on stderr
    assert (run.returncode, run.result["status"], run.result["hits"]) == (0, "ok", [])
    assert "no hits: the feature store holds no chunks yet: run `twin features run` first" in run.stderr


@pytest.mark.parametrize("form", ["ada-quillfeather", user_id(ADA), "ada quillfeather"])
def test_features_run_takes_the_author_as_every_command_does(sample_warehouse: Any, form: str) -> None:
    from twin_core.features.pipeline import resolve_author

    # the slug and the id were "no author named 'ada-quillfeather' in the warehouse"
    assert resolve_author(sample_warehouse, form) == user_id(ADA)


@pytest.mark.slow
def test_search_by_slug_finds_the_author_and_one_without_chunks_is_named(
    twin: Any, twin_home: Path, settings: Any, sample_warehouse: Any, featurize: Any, embedder: Any
) -> None:
    from twin_core.features.retrieval import search, why_empty
    from twin_core.stores.vectors import open_vector_store

    featurize()
    # the slug passed --author's check, then became the id of nobody: `"hits": []`, exit 0
    run = twin("rag", "search", "overwrite partitions", "--author", "ada-quillfeather", "-k", "1")
    assert run.returncode == 0, run.stderr[-2000:]
    assert [h["author_full_name"] for h in run.result["hits"]] == [ADA]
    store = open_vector_store(settings)
    try:  # an author never featurized: said so, with the command to run
        assert search("partitions", author="Oskar Brennmoor", store=store, embedder=embedder) == []
        assert why_empty(store, "Oskar Brennmoor") == (
            "author 'Oskar Brennmoor' has no chunks in the feature store: run `twin features run` first"
        )
        assert why_empty(store, "Oskar Brennmoor", ["posts"]).startswith("author 'Oskar Brennmoor' has no chunks")
    finally:
        store.close()
