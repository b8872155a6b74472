"""`twin rag query` answers with the author's production twin, as `twin serve` does (the base model when the
author has none); `--model base` or a version of that author choose otherwise, and a bad choice is refused
before any model loads."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest
from support.rag_home import build_rag_home

ADA, BOB = "Ada Quillfeather", "Bob Marlowe"
BASE = "smollm2-135m-instruct"


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory, llm_models_dir: Path, tiny_llm: Any) -> dict[str, Any]:
    """The sample corpus featurized, Ada with a production version and Bob with a candidate (copies of the
    converted base model: tiny_llm made it)."""
    from twin_core.stores.registry import open_registry

    root = tmp_path_factory.mktemp("answering")
    settings = build_rag_home(root / "twin", llm_models_dir)
    registry = open_registry(settings)
    refs = {}
    for author in (ADA, BOB):
        folder = root / author.split()[0]
        shutil.copytree(llm_models_dir / BASE, folder / "merged")
        (folder / "merged" / "MARKER.txt").write_text(author)  # a distinct content hash per version
        refs[author] = registry.register(author, folder, {"base_model": "smollm2"}).ref
    registry.set_stage(refs[ADA], "production", reason="test")
    env = {"TWIN_HOME": str(settings.home), "TWIN_LLM_MODELS_DIR": str(llm_models_dir), "TWIN_LLM_THREADS": "1"}
    return {"env": env, "ada": refs[ADA], "bob": refs[BOB]}


def _ask(twin: Any, home: dict[str, Any], *args: str) -> Any:
    return twin("rag", "query", "What is idempotency?", "--max-new-tokens", "1", *args, env=home["env"])


def test_the_authors_production_twin_answers_by_default(twin: Any, home: dict[str, Any]) -> None:
    run = _ask(twin, home, "--author", ADA)
    assert run.returncode == 0, run.stderr[-2000:]
    assert (run.result["model_version"], run.result["author"]) == (home["ada"], ADA)
    assert f"{ADA}'s production model {home['ada']} answers" in run.stderr


def test_an_author_without_production_gets_the_base_model(twin: Any, home: dict[str, Any]) -> None:
    run = _ask(twin, home, "--author", BOB)  # Bob's version is only a candidate
    assert run.returncode == 0, run.stderr[-2000:]
    assert run.result["model_version"].startswith(BASE)
    assert f"{BOB} has no production model in the registry: the base model answers" in run.stderr


@pytest.mark.parametrize(("choice", "version"), [("base", BASE), ("bob", "bob")])
def test_model_chooses_the_base_or_a_version(twin: Any, home: dict[str, Any], choice: str, version: str) -> None:
    author = ADA if choice == "base" else BOB
    run = _ask(twin, home, "--author", author, "--model", home.get(choice, choice))
    assert run.returncode == 0, run.stderr[-2000:]
    assert run.result["model_version"].startswith(home.get(version, version))


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["--model", "prod"],
            "--model 'prod': expected production (the author's production version, else the "
            "base model), base, or <author_slug>/vNNNN",
        ),
        (["--model", "ada-quillfeather/v0042"], "unknown model version ada-quillfeather/v0042"),
    ],
)
def test_a_bad_choice_is_refused_before_loading(twin: Any, home: dict[str, Any], args: list, message: str) -> None:
    run = twin("rag", "query", "hi", "--author", ADA, *args, env={**home["env"], "TWIN_LLM_BACKEND": "openai"})
    assert (run.returncode, run.result["kind"], run.result["error"]) == (3, "input", message)


def test_another_authors_version_is_refused(twin: Any, home: dict[str, Any]) -> None:
    run = _ask(twin, home, "--author", ADA, "--model", home["bob"])
    assert (run.returncode, run.result["kind"]) == (3, "input")
    assert run.result["error"] == f"--model {home['bob']} is {BOB}'s model, not {ADA}'s"
