"""`twin registry show|promote|archive` and `twin deploy canary` with a version the registry does not have: the
argument is named, with the author's versions (the wording of `twin train dpo --from`), exit 3, nothing changes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from support.cli import one_error_line

AUTHOR = "Ada Quillfeather"
COMMANDS = [
    (["registry", "show"], "registry.show"),
    (["registry", "promote", "--stage", "production"], "registry.promote"),
    (["registry", "archive"], "registry.archive"),
    (["deploy", "canary"], "deploy.canary"),
]


def _register(settings, tmp_path: Path, tag: str) -> str:
    """A model version registered in-process on the same TWIN_HOME: a tiny folder in the layout training writes."""
    from twin_core.stores.registry import open_registry

    folder = tmp_path / f"model-{tag}"
    (folder / "merged").mkdir(parents=True)
    (folder / "merged" / "config.json").write_text(json.dumps({"model_type": "llama", "tag": tag}))
    (folder / "merged" / "model.safetensors").write_bytes(tag.encode() * 100)
    return open_registry(settings).register(AUTHOR, folder, {}).ref


@pytest.mark.parametrize(("args", "step"), COMMANDS)
def test_an_unknown_version_of_a_known_author_lists_its_versions(twin, settings, tmp_path: Path, args, step) -> None:
    # was "unknown model version ada-quillfeather/v0042": no argument named, the known versions not listed
    assert [_register(settings, tmp_path, tag) for tag in ("1", "2")] == [
        "ada-quillfeather/v0001",
        "ada-quillfeather/v0002",
    ]
    state = settings.home / "artifacts" / "models" / "ada-quillfeather" / "registry.json"
    before = state.read_bytes()
    run = twin(*args[:2], "ada-quillfeather/v0042", *args[2:])
    assert one_error_line(run, 3, "input", step) == (
        "ref 'ada-quillfeather/v0042': unknown model version ada-quillfeather/v0042 "
        "(model versions of ada-quillfeather: v0001, v0002; see `twin registry list`)"
    )
    assert state.read_bytes() == before


@pytest.mark.parametrize(("args", "step"), COMMANDS)
def test_a_version_of_an_author_without_any_says_so(twin, settings, tmp_path: Path, args, step) -> None:
    # was "unknown model version grace-hopper/v0001", as if only that version were missing
    _register(settings, tmp_path, "1")  # another author's versions are not listed
    run = twin(*args[:2], "grace-hopper/v0001", *args[2:])
    assert one_error_line(run, 3, "input", step) == (
        "ref 'grace-hopper/v0001': unknown model version grace-hopper/v0001 "
        "(no model version of grace-hopper yet; see `twin registry list`)"
    )


@pytest.mark.parametrize(("args", "step"), COMMANDS)
def test_a_malformed_ref_keeps_the_expected_form(twin, twin_home: Path, args, step) -> None:
    run = twin(*args[:2], "Ada Quillfeather/v1", *args[2:])
    assert one_error_line(run, 3, "input", step) == (
        "model version 'Ada Quillfeather/v1': expected <author_slug>/vNNNN, e.g. paul-iusztin/v0001"
    )


def test_a_known_version_is_still_shown(twin, settings, tmp_path: Path) -> None:
    ref = _register(settings, tmp_path, "1")
    run = twin("registry", "show", ref)
    assert run.returncode == 0, run.stderr[-2000:]
    assert run.result["model"]["ref"] == ref
