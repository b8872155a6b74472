"""`twin datasets build` on the sample corpus's cleaned documents, in the real embedded stores."""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from support.openai_stub import ChatHandler, serve
from support.ports import refused_port

from twin_core.datasets.build import BuildOptions, build_author, read_cleaned
from twin_core.datasets.versions import list_versions, load_dataset_version
from twin_core.errors import InputError
from twin_core.settings import updated

AUTHOR = "Ada Quillfeather"
EXTRACTIVE = BuildOptions(strategy="extractive", seed=7, max_rejected=0)


def _rows(settings: Any, version_id: str) -> list[dict]:
    v = load_dataset_version(settings, version_id)
    return v.rows("train") + v.rows("test")


def test_extractive_build_is_versioned_deterministic_and_split_by_document(cleaned_home: Any) -> None:
    first = build_author(cleaned_home, AUTHOR, EXTRACTIVE)
    assert first.versions == {"instruct": "instruct/ada-quillfeather/v0001"}
    assert first.created == {"instruct": True}
    rows = _rows(cleaned_home, first.versions["instruct"])
    assert len(rows) > 20
    splits_of_doc: dict[str, set[str]] = {}
    for r in rows:
        splits_of_doc.setdefault(r["document_id"], set()).add(r["split"])
    assert all(len(s) == 1 for s in splits_of_doc.values())
    assert {"train", "test"} == {r["split"] for r in rows}
    meta = load_dataset_version(cleaned_home, first.versions["instruct"]).metadata
    assert meta["forms_used"] >= 4
    assert meta["strategy"] == "extractive"
    assert len(meta["lineage"]["documents"]) == 30
    assert meta["validation"]["data_docs"].endswith("index.html")

    again = build_author(cleaned_home, AUTHOR, EXTRACTIVE)  # unchanged corpus: no new version
    assert again.versions == first.versions
    assert again.created == {"instruct": False}
    assert list_versions(cleaned_home) == ["instruct/ada-quillfeather/v0001"]

    other_seed = build_author(cleaned_home, AUTHOR, BuildOptions(strategy="extractive", seed=8, max_rejected=0))
    assert other_seed.versions == {"instruct": "instruct/ada-quillfeather/v0002"}
    contents = [d.content for d in read_cleaned(cleaned_home, AUTHOR)]
    for r in _rows(cleaned_home, "instruct/ada-quillfeather/v0002"):
        assert any(r["answer"] in c for c in contents)  # the answer is the author's verbatim text
    assert {r["instruction"] for r in rows} != {
        r["instruction"] for r in _rows(cleaned_home, other_seed.versions["instruct"])
    }


def test_a_killed_build_leaves_no_half_version(cleaned_home: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    import twin_core.datasets.record as record

    real = record.to_parquet
    calls = {"n": 0}

    def dies_on_second_file(rows: list[dict]) -> bytes:
        calls["n"] += 1
        if calls["n"] == 2:
            raise KeyboardInterrupt  # the process is stopped while writing the version's files
        return real(rows)

    monkeypatch.setattr(record, "to_parquet", dies_on_second_file)
    with pytest.raises(KeyboardInterrupt):
        build_author(cleaned_home, AUTHOR, EXTRACTIVE)
    assert list_versions(cleaned_home) == []
    monkeypatch.setattr(record, "to_parquet", real)
    assert build_author(cleaned_home, AUTHOR, EXTRACTIVE).created == {"instruct": True}


def test_export_is_loadable_with_hugging_face_datasets(cleaned_home: Any, tmp_path: Path) -> None:
    import datasets as hf

    from twin_core.datasets.export import export_version

    version = build_author(cleaned_home, AUTHOR, EXTRACTIVE).versions["instruct"]
    out = export_version(cleaned_home, version, tmp_path / "export")
    loaded = hf.load_dataset(str(tmp_path / "export"))
    assert sorted(loaded) == ["test", "train"]
    assert loaded["train"].num_rows == out["rows"]["train"]
    assert "instruction" in loaded["train"].column_names
    assert "Ada Quillfeather" in (tmp_path / "export" / "README.md").read_text()
    (tmp_path / "a-file").write_text("kept")
    with pytest.raises(InputError, match=re.escape(f"cannot write dataset {version} to {tmp_path / 'a-file'}: ")):
        export_version(cleaned_home, version, tmp_path / "a-file")
    assert (tmp_path / "a-file").read_text() == "kept"


def test_unknown_author_exits_3_and_writes_nothing(cleaned_home: Any, twin: Any, warehouse: Any) -> None:
    known = ", ".join(u.full_name for u in warehouse.users())  # the warehouse's order, as features run says
    run = twin("datasets", "build", "--author", "Nobody Atall")
    assert run.returncode == 3
    assert run.result["error"] == f"no author named 'Nobody Atall' in the warehouse (known: {known})"
    assert list_versions(cleaned_home) == []
    assert twin("datasets", "show", "instruct/nobody-atall/v0001").returncode == 3
    assert twin("datasets", "build", "--max-rejected", "-1").returncode == 2  # usage: 0 = no pairs, never "all"
    listed = twin("datasets", "list", "--kind", "bogus")
    assert (listed.returncode, listed.result["error"]) == (3, "--kind 'bogus': expected instruct or preference")


def test_an_author_with_nothing_to_build_from_is_skipped_and_the_others_built(
    cleaned_home: Any, twin: Any, warehouse: Any
) -> None:
    warehouse.get_or_create_user("Ada Quilfeather")  # a typo's author, no document
    run = twin("datasets", "build", "--max-rejected", "0")
    assert (run.returncode, run.result["status"]) == (3, "partial")
    assert [a["author"] for a in run.result["authors"]] == [AUTHOR]
    assert [s["author"] for s in run.result["skipped"]] == ["Ada Quilfeather"]
    assert "no cleaned documents" in run.result["skipped"][0]["error"]
    assert list_versions(cleaned_home) == ["instruct/ada-quillfeather/v0001"]  # no pairs asked for
    alone = twin("datasets", "build", "--author", "Ada Quilfeather")  # named on its own: still an error
    assert alone.returncode == 3 and "no cleaned documents" in alone.result["error"]


def test_unreachable_llm_endpoint_exits_4_naming_the_url(cleaned_home: Any, twin: Any) -> None:
    with refused_port() as port:
        url = f"http://127.0.0.1:{port}/v1"
        env = {"TWIN_LLM_BACKEND": "openai", "TWIN_LLM_BASE_URL": url, "TWIN_LLM_RETRIES": "0"}
        run = twin("datasets", "build", "--strategy", "llm", "--max-extracts", "2", env=env)
    assert run.returncode == 4
    assert url in run.result["error"]
    assert list_versions(cleaned_home) == []


class _FakeLLM(ChatHandler):
    """An OpenAI-compatible endpoint: valid JSON pairs, except malformed JSON for some passages."""

    replies: list[str] = []

    def reply(self, body: dict[str, Any]) -> str:
        passage = body["messages"][-1]["content"]
        tag = hashlib.sha256(passage.encode()).hexdigest()[:8]
        if tag[0] in "01234":
            _FakeLLM.replies.append("malformed")
            return '{"pairs": [{"instruction": "unterminated'
        _FakeLLM.replies.append("ok")
        pair = {"instruction": f"Tell me about passage {tag}.", "answer": passage.split("Passage:\n", 1)[1]}
        return json.dumps({"pairs": [pair]})


@pytest.fixture
def fake_llm() -> Iterator[str]:
    _FakeLLM.replies = []
    with serve(_FakeLLM) as url:
        yield url


def test_llm_strategy_drops_malformed_replies_and_caches_every_call(cleaned_home: Any, fake_llm: str) -> None:
    from twin_core.datasets.rejected_answers import GenerationModel

    settings = updated(cleaned_home, llm_backend="openai", llm_base_url=fake_llm, llm_retries=0)
    opts = BuildOptions(strategy="llm", seed=1, max_extracts=12, max_rejected=0)
    result = build_author(settings, AUTHOR, opts, open_model=GenerationModel(settings, AUTHOR))
    malformed = _FakeLLM.replies.count("malformed")
    assert len(_FakeLLM.replies) == 12
    assert 0 < malformed < 12
    assert result.stats["filters"]["dropped"] == {"malformed_reply": malformed}
    rows = _rows(settings, result.versions["instruct"])
    assert {r["instruction"].split()[-1] for r in rows} <= {f"{t}." for t in _instruction_tags(rows)}
    assert all(r["instruction"].startswith("Tell me about passage ") for r in rows)

    # Unchanged: the same versions, no call. A changed filter is a new build, with every reply cached.
    again = build_author(settings, AUTHOR, opts, open_model=GenerationModel(settings, AUTHOR))
    assert again.created == {"instruct": False}
    rebuilt = build_author(
        updated(settings, datasets_near_duplicate_jaccard=0.9),
        AUTHOR,
        opts,
        open_model=GenerationModel(settings, AUTHOR),
    )
    assert rebuilt.created == {"instruct": True}
    assert rebuilt.stats["llm_calls"] == 0
    assert len(_FakeLLM.replies) == 12


def _instruction_tags(rows: list[dict]) -> set[str]:
    return {r["instruction"].split()[-1].rstrip(".") for r in rows}


@pytest.mark.slow
def test_preference_pairs_come_from_the_base_model_through_the_serving_prompt(cleaned_home: Any) -> None:
    from twin_core.datasets.rejected_answers import GenerationModel

    settings = updated(cleaned_home, datasets_rejected_max_new_tokens=40, llm_threads=1)
    opts = BuildOptions(strategy="extractive", seed=7, max_rejected=2)
    result = build_author(settings, AUTHOR, opts, open_model=GenerationModel(settings, AUTHOR))
    assert set(result.versions) == {"instruct", "preference"}
    v = load_dataset_version(settings, result.versions["preference"])
    pairs = v.rows("train") + v.rows("test")
    assert len(pairs) == 2
    instruct = {r["instruction"]: r for r in _rows(settings, result.versions["instruct"])}
    for p in pairs:
        assert p["chosen"] in instruct[p["instruction"]]["answer"]  # the author's own words
        assert len(p["chosen"]) >= 100
        assert p["rejected"] and p["rejected"] != p["chosen"]
    assert v.metadata["model"] == "smollm2-135m-instruct:q4_1" or v.metadata["model"].startswith("smollm2")
    assert build_author(settings, AUTHOR, opts, open_model=GenerationModel(settings, AUTHOR)).stats == {
        "unchanged": True
    }
