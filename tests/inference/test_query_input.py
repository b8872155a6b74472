"""`twin rag query` on the input a user types: refused before any model loads, or a said reason for a poor answer."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from twin_core.errors import InputError

NO_LLM = {"TWIN_LLM_BACKEND": "openai"}  # opening the LLM fails at once (no TWIN_LLM_BASE_URL): no model to load


def _import(twin: Any, *folders: Path) -> None:
    for folder in folders:
        assert twin("warehouse", "import", str(folder)).returncode == 0


def test_undecodable_bytes_are_bad_input(twin: Any, twin_home: Path, sample_dir: Path) -> None:
    _import(twin, sample_dir)
    run = twin("rag", "query", "\udcff bad", "--author", "Ada Quillfeather", env=NO_LLM)  # b"\xff bad" from a shell
    assert (run.returncode, run.result["kind"]) == (3, "input"), run.stderr[-2000:]
    assert run.result["error"] == "query is not valid UTF-8 text (undecodable byte at character 0)"


def test_validate_request_refuses_lone_surrogates(settings: Any) -> None:
    from twin_core.inference.pipeline import RAGRequest, validate_request

    # JSON may carry "\udcff" too: it failed in the tokenizer with a TypeError
    with pytest.raises(InputError, match="not valid UTF-8"):
        validate_request(RAGRequest("caf\udce9"), settings)


def test_no_author_to_answer_for_is_said_before_the_embedding_model_loads(
    twin: Any, twin_home: Path, sample_dir: Path
) -> None:
    _import(twin, sample_dir, sample_dir / "second_author")
    run = twin("rag", "query", "hello", env=NO_LLM)
    several = "several authors are known: name one with 'author' (or --author)"
    assert (run.returncode, run.result["error"]) == (3, several)
    assert "loading embedding model" not in run.stderr  # was loaded (seconds) before the author was looked at


def test_an_answer_with_nothing_to_retrieve_is_warned_about_before_the_llm(
    twin: Any, twin_home: Path, sample_dir: Path
) -> None:
    _import(twin, sample_dir)  # imported, never featurized: the base model would answer with no source, exit 0
    run = twin("rag", "query", "hi", "--author", "ada-quillfeather", env=NO_LLM)
    assert run.result["kind"] == "config"  # then the LLM opens, as before
    assert (
        "nothing to retrieve, the answer will cite no source: the feature store holds no chunks yet: "
        "run `twin features run` first"
    ) in run.stderr
