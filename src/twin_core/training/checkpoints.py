"""Checkpoints mirrored to the artifact store, so a killed (spot) pod loses at most N steps.

Every Trainer checkpoint (adapter, optimizer, scheduler, RNG states, trainer state) is uploaded as a
version of ``training/<run_id>/checkpoints`` (``metadata.json`` last: a half upload is no
checkpoint). ``--resume`` downloads the newest one and hands it to ``Trainer.train``, which restores
the step counter and skips the batches already seen: the same data order as an uninterrupted run.

Only the newest ``TWIN_TRAINING_KEEP_CHECKPOINTS`` (default 2: the newest, and the one before as a
spare) stay, and, with early stopping, the best so far (lowest held-out loss): once a checkpoint's metadata
is written, the run's other versions are deleted (``ArtifactStore.prune_versions``: metadata first, so a
killed delete leaves no half checkpoint, and the leftover files go at the next prune). A finished run keeps
its newest checkpoint, which a ``--resume`` after it takes as is. Runs of another run id are not touched.

A resumed run starts in an empty work folder, and Trainer forgets a best checkpoint that is not on disk: it
would end on its last weights while an uninterrupted run ends on the best ones. So ``latest_checkpoint``
also downloads the best checkpoint and points the newest one's trainer state at it.
"""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path
from typing import Any

from twin_core.domain import content_hash
from twin_core.errors import InputError, TwinError
from twin_core.settings import get_settings
from twin_core.stores.artifacts import ArtifactStore

log = logging.getLogger(__name__)


def run_id(**identity: Any) -> str:
    """A run's id: the same kind, data, base, profile and step cap -> the same id (what --resume finds)."""
    return content_hash(identity)[:16]


def checkpoints_name(rid: str) -> str:
    return f"training/{rid}/checkpoints"


def latest_checkpoint(store: ArtifactStore, rid: str, work_dir: Path) -> tuple[Path, int] | None:
    """Download the newest complete checkpoint of run ``rid`` into ``work_dir``; (folder, step)."""
    name = checkpoints_name(rid)
    versions = store.versions(name)
    if not versions:
        return None
    av = store.get_version(name, versions[-1])
    step = int(av.metadata["step"])
    target = _download(store, rid, av.version, work_dir / f"checkpoint-{step}")
    _restore_best(store, rid, target)
    return target, step


def _download(store: ArtifactStore, rid: str, version: str, target: Path) -> Path:
    if target.exists():
        shutil.rmtree(target)
    store.download_version(checkpoints_name(rid), version, target.parent / ".download").rename(target)
    return target


def _version_at_step(store: ArtifactStore, rid: str, step: int) -> str | None:
    """The stored checkpoint version of run ``rid`` at ``step``, newest first (None if pruned)."""
    name = checkpoints_name(rid)
    for version in reversed(store.versions(name)):
        if int(store.get_version(name, version).metadata.get("step", -1)) == step:
            return version
    return None


def _restore_best(store: ArtifactStore, rid: str, newest: Path) -> None:
    """Early stopping's best checkpoint beside ``newest`` (downloaded unless it is the newest), and the
    newest's trainer state pointing at it, so that training ends on the best weights as without a kill."""
    state_file = newest / "trainer_state.json"
    state = json.loads(state_file.read_text())
    best = state.get("best_global_step")
    if not best:
        return  # no held-out evaluation yet
    folder = newest.parent / f"checkpoint-{best}"
    if not folder.exists():
        version = _version_at_step(store, rid, int(best))
        if version is None:  # a store pruned before the best was kept
            log.warning("run %s: the best checkpoint so far (step %s) is no longer stored: the run ends on its "
                        "last weights unless a later evaluation is better", rid, best)  # fmt: skip
            folder = None  # as Trainer drops a best checkpoint that is not on disk (so does a run taken as is)
        else:
            _download(store, rid, version, folder)
            log.info("run %s: best checkpoint so far (step %s) restored beside %s", rid, best, newest.name)
    state["best_model_checkpoint"] = str(folder) if folder else None
    state_file.write_text(json.dumps(state, indent=2, sort_keys=True) + "\n")


def runs_with_checkpoints(store: ArtifactStore, **labels: Any) -> list[tuple[str, int]]:
    """(run id, newest step) of every run whose newest checkpoint carries ``labels`` (e.g. the dataset):
    what a ``--resume`` that finds nothing for its own run id names instead."""
    rids = {key.split("/")[1] for key in store.list("training/") if key.count("/") >= 3 and "/checkpoints/" in key}
    found = []
    for rid in sorted(rids):
        versions = store.versions(checkpoints_name(rid))
        meta = store.get_version(checkpoints_name(rid), versions[-1]).metadata if versions else {}
        if meta and all(meta.get(k) == v for k, v in labels.items()):
            found.append((rid, int(meta["step"])))
    return found


def prune_checkpoints(store: ArtifactStore, rid: str, keep: int, best_step: int | None = None) -> list[str]:
    """Delete all but the ``keep`` newest checkpoints of run ``rid`` and the one at ``best_step`` (early
    stopping's best so far); the deleted versions. Best effort: a failure is a WARNING, never the run's (the
    checkpoint is saved; the next save prunes again)."""
    try:
        best = _version_at_step(store, rid, best_step) if best_step else None
        removed = store.prune_versions(checkpoints_name(rid), keep, spare=[best] if best else [])
    except (TwinError, OSError) as exc:
        log.warning("run %s: could not delete its older checkpoints (kept for now): %s", rid, exc)
        return []
    if removed:
        also = f" and the best, step {best_step}" if best else ""
        log.info("run %s: deleted older checkpoints %s (keeping the newest %d%s)", rid, ", ".join(removed), keep, also)
    return removed


def make_callback(store: ArtifactStore, rid: str, labels: dict[str, Any] | None = None, keep: int | None = None) -> Any:
    """The callback that uploads each checkpoint, then deletes the run's checkpoints older than the ``keep``
    newest (default: ``TWIN_TRAINING_KEEP_CHECKPOINTS``); ``labels`` (kind, dataset) go into its metadata."""
    from transformers import TrainerCallback

    kept = get_settings().training.keep_checkpoints if keep is None else keep
    if kept < 1:
        raise InputError(f"keep at least 1 checkpoint (got {kept})")

    class ArtifactCheckpoints(TrainerCallback):
        """Upload each checkpoint the Trainer saves (every ``save_steps``) to the artifact store."""

        def on_save(self, args: Any, state: Any, control: Any, **kwargs: Any) -> Any:
            if not state.is_world_process_zero:
                return control
            folder = Path(args.output_dir) / f"checkpoint-{state.global_step}"
            if not folder.is_dir():
                raise InputError(f"checkpoint folder {folder} missing after save")
            files = {p.relative_to(folder).as_posix(): p for p in sorted(folder.rglob("*")) if p.is_file()}
            av = store.put_version(
                checkpoints_name(rid), files, {"step": state.global_step, "run_id": rid, **(labels or {})}
            )
            log.info("checkpoint step %d -> %s", state.global_step, av.uri)
            # after the new one is complete (its metadata is written); Trainer has just chosen the best so far
            prune_checkpoints(store, rid, kept, getattr(state, "best_global_step", None))
            return control

    return ArtifactCheckpoints()
