"""`twin datasets build` on the sample corpus's cleaned documents, in the real embedded stores."""

from __future__ import annotations

import dataclasses
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


def test_pair_settings_give_the_existing_instruct_version_and_earlier_settings_a_new_one(cleaned_home: Any) -> None:
    first = build_author(cleaned_home, AUTHOR, EXTRACTIVE)
    assert (first.versions, first.created) == ({"instruct": "instruct/ada-quillfeather/v0001"}, {"instruct": True})
    # max_rejected and pair_kinds decide preference rows only: the instruct rows are the same version
    for opts in (
        BuildOptions(strategy="extractive", seed=7, max_rejected=4),
        BuildOptions(strategy="extractive", seed=7, max_rejected=32, pair_kinds=("other_author",)),
    ):
        again = build_author(cleaned_home, AUTHOR, opts)  # no model, no embedded chunks: no pairs
        assert (again.versions, again.created) == (first.versions, {"instruct": False})
        assert again.stats["preference"] == {"skipped": "no rows"}
    assert list_versions(cleaned_home) == ["instruct/ada-quillfeather/v0001"]
    other = build_author(cleaned_home, AUTHOR, BuildOptions(strategy="extractive", seed=8, max_rejected=0))
    assert (other.versions, other.created) == ({"instruct": "instruct/ada-quillfeather/v0002"}, {"instruct": True})
    # back to seed 7: a new newest version (readers take the newest as current, and the twin trains on it)
    back = build_author(cleaned_home, AUTHOR, EXTRACTIVE)
    assert (back.versions, back.created) == ({"instruct": "instruct/ada-quillfeather/v0003"}, {"instruct": True})
    assert list_versions(cleaned_home)[-1] == "instruct/ada-quillfeather/v0003"


def test_cli_rebuild_with_other_pair_settings_is_unchanged(cleaned_home: Any, twin: Any) -> None:
    first = twin("datasets", "build", "--max-rejected", "0")
    assert (first.returncode, first.result["status"]) == (0, "ok")
    assert first.result["versions"] == {"ada-quillfeather": {"instruct": "instruct/ada-quillfeather/v0001"}}
    again = twin("datasets", "build", "--max-rejected", "4", "--pair-kinds", "other_author")
    assert (again.returncode, again.result["status"]) == (0, "unchanged")
    assert again.result["versions"] == first.result["versions"]
    assert [a["created"] for a in again.result["authors"]] == [{"instruct": False}]
    assert "warnings" not in again.result
    assert list_versions(cleaned_home) == ["instruct/ada-quillfeather/v0001"]


def _held_out_warning(version_id: str, min_rows: int) -> str:
    return (
        f"author 'Ada Quillfeather': dataset {version_id} has 0 held-out (test) rows; the evaluation needs at "
        f"least {min_rows} (samples.min_rows in configs/evaluation.yaml) and will refuse it (more documents, or a "
        "higher TWIN_DATASETS_TEST_PERCENT / TWIN_DATASETS_MIN_TEST_ROWS)"
    )


def test_a_build_without_held_out_rows_warns(cleaned_home: Any, twin: Any, caplog: pytest.LogCaptureFixture) -> None:
    settings = updated(cleaned_home, datasets_test_percent=0, datasets_min_test_rows=0)
    version = "instruct/ada-quillfeather/v0001"
    from twin_core.evaluation.config import load_eval_config

    min_rows = load_eval_config(settings).min_rows  # the CLI passes the evaluation's minimum to the build
    expected = _held_out_warning(version, min_rows)
    opts = dataclasses.replace(EXTRACTIVE, min_held_out=min_rows)
    with caplog.at_level("WARNING", logger="twin_core.datasets.build"):
        built = build_author(settings, AUTHOR, opts)
    assert built.versions == {"instruct": version}
    assert load_dataset_version(settings, version).rows("test") == []
    assert built.as_dict()["warnings"] == [expected]
    build_warnings = [r.getMessage() for r in caplog.records if r.name == "twin_core.datasets.build"]
    assert build_warnings == [f"datasets build: {expected}"]  # (other loggers: e.g. py.warnings on a first import)
    assert build_author(settings, AUTHOR, opts).stats == {"unchanged": True, "warnings": [expected]}
    without = build_author(settings, AUTHOR, EXTRACTIVE).stats["warnings"]  # no minimum given: 0 rows still warn
    minimum = f"needs at least {min_rows} (samples.min_rows in configs/evaluation.yaml) and "
    assert without == [expected.replace(minimum, "")]

    env = {"TWIN_DATASETS_TEST_PERCENT": "0", "TWIN_DATASETS_MIN_TEST_ROWS": "0"}
    run = twin("datasets", "build", "--seed", "7", "--max-rejected", "0", env=env)  # EXTRACTIVE
    assert (run.returncode, run.result["status"]) == (0, "unchanged")
    assert run.result["warnings"] == [expected]
    assert run.result["authors"][0]["warnings"] == [expected]
    assert f"datasets build: {expected}" in run.stderr
    assert "warnings" not in build_author(cleaned_home, AUTHOR, opts).stats  # the default split holds out


def test_export_refuses_a_folder_it_did_not_write(cleaned_home: Any, tmp_path: Path, twin: Any) -> None:
    from twin_core.datasets.export import MARKER, export_version

    version = build_author(cleaned_home, AUTHOR, EXTRACTIVE).versions["instruct"]
    dest = tmp_path / "repo"
    dest.mkdir()
    (dest / "README.md").write_text("keep\n")
    error = (
        f"cannot export dataset {version} to {dest}: the folder is not empty (README.md) and is not an earlier "
        f"dataset export (no {MARKER}); choose an empty or new folder, or pass --force to overwrite README.md and "
        "data/*.parquet there"
    )
    with pytest.raises(InputError) as caught:
        export_version(cleaned_home, version, dest)
    assert str(caught.value) == error
    run = twin("datasets", "export", version, str(dest))
    assert (run.returncode, run.result["error"]) == (3, error)
    assert sorted(p.name for p in dest.iterdir()) == ["README.md"]  # nothing written
    assert (dest / "README.md").read_text() == "keep\n"

    fresh = tmp_path / "fresh"
    first = export_version(cleaned_home, version, fresh)
    assert json.loads((fresh / MARKER).read_text())["version"] == version
    (fresh / "notes.txt").write_text("mine")
    assert export_version(cleaned_home, version, fresh) == first  # an earlier export: written again
    assert (fresh / "notes.txt").read_text() == "mine"

    forced = twin("datasets", "export", version, str(dest), "--force")
    assert forced.returncode == 0
    assert AUTHOR in (dest / "README.md").read_text()
    assert sorted(p.name for p in (dest / "data").iterdir()) == ["test.parquet", "train.parquet"]


def test_an_export_killed_while_writing_a_file_leaves_the_earlier_file(
    cleaned_home: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from twin_core.datasets.export import MARKER, export_version

    version = build_author(cleaned_home, AUTHOR, EXTRACTIVE).versions["instruct"]
    dest = tmp_path / "export"
    export_version(cleaned_home, version, dest)
    before = {p.relative_to(dest).as_posix(): p.read_bytes() for p in dest.rglob("*") if p.is_file()}
    real = Path.write_bytes

    writes = []

    def dies_halfway(self: Path, data: bytes) -> int:
        writes.append(self.name)
        if len(writes) == 1:  # the marker saying "being written"
            return real(self, data)
        real(self, data[: len(data) // 2])
        raise KeyboardInterrupt  # the process is stopped in the middle of the first data file

    monkeypatch.setattr(Path, "write_bytes", dies_halfway)
    with pytest.raises(KeyboardInterrupt):
        export_version(cleaned_home, version, dest)
    monkeypatch.setattr(Path, "write_bytes", real)
    after = {p.relative_to(dest).as_posix(): p.read_bytes() for p in dest.rglob("*") if p.is_file()}
    marker = json.loads(after.pop(MARKER))
    assert marker == {"version": version, "complete": False}  # no earlier marker vouching for a half export
    assert json.loads(before.pop(MARKER))["complete"] is True
    assert after == before  # whole earlier files, no temporary file left
    assert export_version(cleaned_home, version, dest)["version"] == version  # a re-run finishes it, no --force
    assert json.loads((dest / MARKER).read_text())["complete"] is True
