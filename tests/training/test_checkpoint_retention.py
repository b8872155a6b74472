"""Only the newest TWIN_TRAINING_KEEP_CHECKPOINTS checkpoints of a run stay in the artifact store: the callback
deletes the older ones once a new one is complete, metadata first; --resume still finds the newest. The
Trainer's saves are played by hand (a folder per step, then ``on_save``): no model is trained."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from twin_core.errors import ConfigError
from twin_core.settings import get_settings, load_settings
from twin_core.stores.artifacts import ArtifactStore, open_artifact_store
from twin_core.training import checkpoints

RID = "0123456789abcdef"


@pytest.fixture
def store(twin_home: Path) -> ArtifactStore:
    return open_artifact_store(get_settings())


def _save(callback: Any, output_dir: Path, step: int, best: int | None = None) -> None:
    """What Trainer does every ``save_steps``: write checkpoint-<step>, then call the callbacks' on_save;
    ``best``: early stopping's best step so far."""
    folder = output_dir / f"checkpoint-{step}"
    folder.mkdir(parents=True)
    (folder / "adapter_model.safetensors").write_bytes(f"adapter {step}".encode())
    (folder / "optimizer.pt").write_bytes(f"optimizer {step}".encode())
    best_folder = str(output_dir / f"checkpoint-{best}") if best else None
    state_json = {"global_step": step, "best_global_step": best, "best_model_checkpoint": best_folder}
    (folder / "trainer_state.json").write_text(json.dumps(state_json))
    args = SimpleNamespace(output_dir=str(output_dir))
    state = SimpleNamespace(global_step=step, is_world_process_zero=True, best_global_step=best)
    control = object()
    assert callback.on_save(args, state, control) is control


def _on_disk(store: ArtifactStore) -> list[str]:
    folder = store.version_local_path(checkpoints.checkpoints_name(RID), "v0001").parent
    return sorted(p.name for p in folder.iterdir())


def test_after_4_checkpoints_the_newest_2_stay_and_resume_takes_the_newest(
    store: ArtifactStore, tmp_path: Path
) -> None:
    callback = checkpoints.make_callback(store, RID, {"kind": "sft", "dataset": "instruct/ada/v0001"})
    for step in (2, 4, 6, 8):
        _save(callback, tmp_path / "trainer", step)
    name = checkpoints.checkpoints_name(RID)
    assert store.versions(name) == ["v0003", "v0004"]
    assert [v.metadata["step"] for v in store.iter_versions(name)] == [6, 8]
    assert _on_disk(store) == ["v0003", "v0004"]

    folder, step = checkpoints.latest_checkpoint(store, RID, tmp_path / "resume")
    assert (folder, step) == (tmp_path / "resume" / "checkpoint-8", 8)
    assert (folder / "adapter_model.safetensors").read_bytes() == b"adapter 8"
    assert (folder / "optimizer.pt").read_bytes() == b"optimizer 8"
    assert checkpoints.runs_with_checkpoints(store, kind="sft") == [(RID, 8)]

    # a rerun of the finished run (without --resume): new numbers, still the newest 2
    _save(callback, tmp_path / "rerun", 2)
    assert store.versions(name) == ["v0004", "v0005"]
    assert _on_disk(store) == ["v0004", "v0005"]


def test_keep_comes_from_the_setting(twin_home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert load_settings().training.keep_checkpoints == 2
    monkeypatch.setenv("TWIN_TRAINING_KEEP_CHECKPOINTS", "1")
    get_settings.cache_clear()
    store = open_artifact_store(get_settings())
    callback = checkpoints.make_callback(store, RID)
    for step in (2, 4, 6):
        _save(callback, tmp_path / "trainer", step)
    assert store.versions(checkpoints.checkpoints_name(RID)) == ["v0003"]
    assert _on_disk(store) == ["v0003"]
    callback = checkpoints.make_callback(store, RID, keep=3)  # an explicit keep wins
    for step in (8, 10, 12):
        _save(callback, tmp_path / "trainer", step)
    assert store.versions(checkpoints.checkpoints_name(RID)) == ["v0004", "v0005", "v0006"]

    monkeypatch.setenv("TWIN_TRAINING_KEEP_CHECKPOINTS", "0")
    with pytest.raises(ConfigError, match=r"^TWIN_TRAINING_KEEP_CHECKPOINTS: Input should be greater than or equal"):
        load_settings()


class Killed(BaseException):
    """The pod going away mid-delete (SIGKILL runs no cleanup)."""


def test_a_prune_killed_after_the_metadata_leaves_the_newest_checkpoint_and_the_next_removes_the_rest(
    store: ArtifactStore, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    callback = checkpoints.make_callback(store, RID, keep=2)
    for step in (2, 4):
        _save(callback, tmp_path / "trainer", step)
    delete = store._b.delete

    def dies_at_a_file(key: str) -> None:
        if not key.endswith("/metadata.json"):
            raise Killed(key)
        delete(key)

    monkeypatch.setattr(store._b, "delete", dies_at_a_file)
    with pytest.raises(Killed):
        _save(callback, tmp_path / "trainer", 6)  # v0003 complete, then v0001's metadata gone, then killed
    monkeypatch.undo()
    name = checkpoints.checkpoints_name(RID)
    assert store.versions(name) == ["v0002", "v0003"]
    assert _on_disk(store) == ["v0001", "v0002", "v0003"]  # v0001's files, no metadata: no checkpoint
    assert checkpoints.latest_checkpoint(store, RID, tmp_path / "resume")[1] == 6

    resumed = checkpoints.make_callback(store, RID, keep=2)  # the resumed process
    _save(resumed, tmp_path / "resumed", 8)
    assert store.versions(name) == ["v0003", "v0004"]
    assert _on_disk(store) == ["v0003", "v0004"]


def test_a_failed_prune_is_a_warning_and_the_checkpoint_is_kept(
    store: ArtifactStore, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    callback = checkpoints.make_callback(store, RID, keep=1)
    _save(callback, tmp_path / "trainer", 2)

    def refused(key: str) -> None:
        raise PermissionError(13, "Permission denied", key)

    monkeypatch.setattr(store._b, "delete", refused)
    with caplog.at_level(logging.WARNING, logger="twin_core.training.checkpoints"):
        _save(callback, tmp_path / "trainer", 4)
    assert [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING] == [
        f"run {RID}: could not delete its older checkpoints (kept for now): [Errno 13] Permission denied: "
        f"'training/{RID}/checkpoints/v0001/metadata.json'"
    ]
    monkeypatch.undo()
    assert store.versions(checkpoints.checkpoints_name(RID)) == ["v0001", "v0002"]
    _save(callback, tmp_path / "trainer", 6)  # the next save prunes again
    assert store.versions(checkpoints.checkpoints_name(RID)) == ["v0003"]
    assert _on_disk(store) == ["v0003"]


def test_the_best_checkpoint_stays_and_a_resume_in_a_fresh_folder_gets_it_back(
    store: ArtifactStore, tmp_path: Path
) -> None:
    callback = checkpoints.make_callback(store, RID, keep=1)
    for step, best in ((2, 2), (4, 2), (6, 2), (8, 2)):
        _save(callback, tmp_path / "killed-pod", step, best)
    name = checkpoints.checkpoints_name(RID)
    assert [v.metadata["step"] for v in store.iter_versions(name)] == [2, 8]
    assert _on_disk(store) == ["v0001", "v0004"]

    folder, step = checkpoints.latest_checkpoint(store, RID, tmp_path / "resume")
    assert (folder, step) == (tmp_path / "resume" / "checkpoint-8", 8)
    best = tmp_path / "resume" / "checkpoint-2"
    assert (best / "adapter_model.safetensors").read_bytes() == b"adapter 2"
    state = json.loads((folder / "trainer_state.json").read_text())
    assert (state["best_global_step"], state["best_model_checkpoint"]) == (2, str(best))

    _save(callback, tmp_path / "resume", 10, 10)  # a lower loss at last: the old best goes
    assert [v.metadata["step"] for v in store.iter_versions(name)] == [10]


def test_a_best_checkpoint_pruned_by_an_older_version_is_a_warning(
    store: ArtifactStore, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    callback = checkpoints.make_callback(store, RID, keep=1)
    for step in (2, 4):
        _save(callback, tmp_path / "killed-pod", step, best=2)
    store.delete_version(checkpoints.checkpoints_name(RID), "v0001")  # as the retention before this kept it
    with caplog.at_level(logging.WARNING, logger="twin_core.training.checkpoints"):
        folder, _ = checkpoints.latest_checkpoint(store, RID, tmp_path / "resume")
    assert [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING] == [
        f"run {RID}: the best checkpoint so far (step 2) is no longer stored: the run ends on its last weights "
        "unless a later evaluation is better"
    ]
    # dropped, as Trainer drops a best checkpoint that is not on disk: a finished run taken as is (no
    # Trainer.train) keeps its last weights and reports no best step, instead of loading a missing folder
    assert json.loads((folder / "trainer_state.json").read_text())["best_model_checkpoint"] is None
