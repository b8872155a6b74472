"""Model registry on the artifact store: versions, stages and their history.

Layout (artifact store keys):

- ``models/<author_slug>/vNNNN/``: one model version, written by ``register``. ``merged/`` holds the
  merged weights and the tokenizer (what KServe's storage initializer and our predictor load),
  ``adapter/`` the LoRA adapter, ``comet/`` the offline experiment archive; ``metadata.json`` is
  written last, so a version exists only once it is complete.
- ``models/<author_slug>/registry.json``: the author's stages and history, replaced atomically on
  every change. Serving polls it (one small read) to pick up a promotion without a restart.

A version missing from ``registry.json`` (its registration was killed between the two writes) is a
candidate. Stages: candidate -> canary -> production -> archived; promoting to production archives
the previous production and remembers it on the author's production stack, so ``rollback`` can bring
it back. Only a version a promotion replaced stays on the stack: a version rolled back, archived on
purpose (``archive``), or moved off production to another stage by hand leaves it, and only an
explicit promotion brings it back. ``ModelVersion.rollback_order`` says which rollback would restore
a version, ``ModelVersion.rolled_back`` which stage change (when, why) rolled it back.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import shutil
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal, get_args

from pydantic import BaseModel, Field

from twin_core.domain import slugify
from twin_core.errors import InputError
from twin_core.settings import Settings
from twin_core.stores.artifacts import ArtifactStore, open_artifact_store

Stage = Literal["candidate", "canary", "production", "archived"]
STAGES: tuple[str, ...] = get_args(Stage)

MODELS_PREFIX = "models"
REGISTRY_FILE = "registry.json"
MERGED_DIR = "merged"  # merged weights + tokenizer: loadable by AutoModelForCausalLM.from_pretrained
ADAPTER_DIR = "adapter"
COMET_DIR = "comet"
DEFAULT_CANARY_PERCENT = 10

_REF_RE = re.compile(r"^([a-z0-9][a-z0-9-]*)/(v\d{4,})$")
# how a rollback's history entry starts: the production's (``rollback`` below) and the canary's
# (twin_core.deploy.rollout.rollback archives the canary with this reason)
ROLLED_BACK_REASON = "rolled back to "
CANARY_ROLLED_BACK_REASON = "canary rolled back: "


class StageChange(BaseModel):
    at: datetime
    from_stage: Stage | None = None  # None: the registration itself
    to_stage: Stage
    reason: str = ""
    numbers: dict[str, Any] = Field(default_factory=dict)


class ModelVersion(BaseModel):
    author: str
    author_slug: str
    version: str  # "v0003"
    ref: str  # "<author_slug>/v0003", what the CLIs take
    stage: Stage = "candidate"
    canary_percent: int | None = None
    storage_uri: str  # the merged-weights folder (s3://... or a local path): KServe's storageUri
    created_at: datetime | None = None
    files: list[str] = Field(default_factory=list)
    metadata: dict[str, Any] = Field(default_factory=dict)
    history: list[StageChange] = Field(default_factory=list)
    # 1: the next rollback restores it, 2: the one after...; None: only a promotion brings it to production
    rollback_order: int | None = None
    # the stage change that rolled it back (production or canary) while it is still archived by it
    rolled_back: StageChange | None = None

    @property
    def adapter_uri(self) -> str:
        return self.storage_uri.rsplit("/", 1)[0] + "/" + ADAPTER_DIR


def parse_ref(ref: str) -> tuple[str, str]:
    """``"paul-iusztin/v0003"`` -> ("paul-iusztin", "v0003"); anything else is an InputError."""
    match = _REF_RE.match(ref.strip().strip("/"))
    if not match:
        raise InputError(f"model version {ref!r}: expected <author_slug>/vNNNN, e.g. paul-iusztin/v0001")
    return match.group(1), match.group(2)


def folder_content_hash(folder: Path) -> str:
    """sha256 over every file's relative path and bytes (streamed): same weights -> same hash."""
    digest = hashlib.sha256()
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        digest.update(path.relative_to(folder).as_posix().encode() + b"\0")
        with path.open("rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                digest.update(block)
        digest.update(b"\0")
    return digest.hexdigest()


def _now() -> datetime:
    return datetime.now(UTC)


def _current(state: dict[str, Any]) -> str | None:
    """The version in production now, if any."""
    return next((v for v, r in state["versions"].items() if r.get("stage") == "production"), None)


def _stack(state: dict[str, Any]) -> list[str]:
    """The production stack, oldest first, of the versions still registered."""
    return [v for v in state["production_stack"] if v in state["versions"]]


def _rollback_order(state: dict[str, Any]) -> list[str]:
    """The versions successive rollbacks restore, next first: the production stack below the production."""
    current = _current(state)
    return [v for v in reversed(_stack(state)) if v != current]


def _rolled_back(history: list[StageChange]) -> StageChange | None:
    """The last stage change, when it archived a production or canary by a rollback."""
    moves = [h for h in history if h.from_stage != h.to_stage]  # record() entries change no stage
    last = moves[-1] if moves else None
    if last is None or last.to_stage != "archived":
        return None
    by = {"production": ROLLED_BACK_REASON, "canary": CANARY_ROLLED_BACK_REASON}.get(last.from_stage or "")
    return last if by and last.reason.startswith(by) else None


class ModelRegistry:
    """Register model folders as versions and move them between stages (see the module doc)."""

    def __init__(self, store: ArtifactStore, settings: Settings) -> None:
        self.store = store
        self.settings = settings

    # -- keys and state -----------------------------------------------------------------------
    @staticmethod
    def _name(slug: str) -> str:
        return f"{MODELS_PREFIX}/{slug}"

    def _state_key(self, slug: str) -> str:
        return f"{self._name(slug)}/{REGISTRY_FILE}"

    def _read_state(self, slug: str) -> dict[str, Any]:
        if not self.store.exists(self._state_key(slug)):
            return {"author_slug": slug, "versions": {}, "production_stack": []}
        state = self.store.get_json(self._state_key(slug))
        state.setdefault("versions", {})
        state.setdefault("production_stack", [])
        return state

    def _write_state(self, slug: str, state: dict[str, Any]) -> None:
        state["updated_at"] = _now().isoformat()
        self.store.put_json(self._state_key(slug), state)  # both backends replace the object atomically

    @contextlib.contextmanager
    def _locked(self, slug: str) -> Iterator[None]:
        """One writer at a time per author on this machine (registry.json is read-modify-write)."""
        import fcntl

        lock_dir = self.settings.home / "locks"
        lock_dir.mkdir(parents=True, exist_ok=True)
        with (lock_dir / f"registry-{slug}.lock").open("a") as fh:
            fcntl.flock(fh, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(fh, fcntl.LOCK_UN)

    def _entry(self, slug: str, version: str, state: dict[str, Any]) -> ModelVersion:
        av = self.store.get_version(self._name(slug), version)
        meta = dict(av.metadata)
        rec = state["versions"].get(version)
        created = meta.pop("registered_at", None)
        if rec is None:  # complete version whose registry.json update was lost: a candidate
            rec = {
                "stage": "candidate",
                "canary_percent": None,
                "history": [{"at": created or _now().isoformat(), "to_stage": "candidate", "reason": "registered"}],
            }
        author = meta.pop("author", None) or state.get("author") or slug
        for key in ("name", "version", "author_slug", "storage_uri"):
            meta.pop(key, None)
        files = meta.pop("files", [])
        history = [StageChange.model_validate(h) for h in rec.get("history", [])]
        order = _rollback_order(state)
        return ModelVersion(
            author=author,
            author_slug=slug,
            version=version,
            ref=f"{slug}/{version}",
            stage=rec["stage"],
            canary_percent=rec.get("canary_percent"),
            storage_uri=self.store.uri(f"{self._name(slug)}/{version}/{MERGED_DIR}"),
            created_at=created,
            files=files,
            metadata=meta,
            history=history,
            rollback_order=order.index(version) + 1 if version in order else None,
            rolled_back=_rolled_back(history),
        )

    def _slugs(self) -> list[str]:
        slugs = set()
        for key in self.store.list(MODELS_PREFIX):
            parts = key.split("/")
            if len(parts) >= 3:
                slugs.add(parts[1])
        return sorted(slugs)

    # -- reading ------------------------------------------------------------------------------
    def get(self, ref: str) -> ModelVersion:
        slug, version = parse_ref(ref)
        if version not in self.store.versions(self._name(slug)):
            raise InputError(f"unknown model version {slug}/{version}")
        return self._entry(slug, version, self._read_state(slug))

    def list(self, author: str | None = None) -> list[ModelVersion]:
        slugs = [slugify(author)] if author else self._slugs()
        out: list[ModelVersion] = []
        for slug in slugs:
            state = self._read_state(slug)
            out.extend(self._entry(slug, v, state) for v in self.store.versions(self._name(slug)))
        return out

    def _with_stage(self, author: str, stage: Stage) -> ModelVersion | None:
        slug = slugify(author)
        state = self._read_state(slug)
        for version, rec in sorted(state["versions"].items()):
            if rec.get("stage") == stage:
                return self._entry(slug, version, state)
        return None

    def production(self, author: str) -> ModelVersion | None:
        """The author's production version (two small reads: cheap enough to poll)."""
        return self._with_stage(author, "production")

    def canary(self, author: str) -> ModelVersion | None:
        return self._with_stage(author, "canary")

    def state_token(self, author: str) -> str:
        """Changes whenever the author's stages change: serving compares it to decide to reload."""
        state = self._read_state(slugify(author))
        return str(state.get("updated_at", ""))

    # -- writing ------------------------------------------------------------------------------
    def register(self, author: str, folder: Path, metadata: dict[str, Any]) -> ModelVersion:
        """Store ``folder`` (``merged/`` required; ``adapter/``, ``comet/``... optional) as a candidate.

        Files are uploaded first and ``metadata.json`` last. A folder with the same content hash as
        an existing version returns that version instead of a duplicate.
        """
        folder = Path(folder)
        if not (folder / MERGED_DIR / "config.json").is_file():
            raise InputError(f"{folder}: no {MERGED_DIR}/config.json, not a model folder to register")
        slug = slugify(author)
        name = self._name(slug)
        chash = metadata.get("content_hash") or folder_content_hash(folder)
        with self._locked(slug):
            state = self._read_state(slug)
            for version in self.store.versions(name):
                if self.store.get_version(name, version).metadata.get("content_hash") == chash:
                    return self._entry(slug, version, state)
            files = {p.relative_to(folder).as_posix(): p for p in sorted(folder.rglob("*")) if p.is_file()}
            now = _now()
            meta = {
                **metadata,
                "author": author,
                "author_slug": slug,
                "content_hash": chash,
                "registered_at": now.isoformat(),
            }
            av = self.store.put_version(name, files, meta)
            state = self._read_state(slug)
            state["author"] = author
            change = StageChange(at=now, to_stage="candidate", reason="registered", numbers=metadata.get("metrics", {}))
            state["versions"][av.version] = {
                "stage": "candidate",
                "canary_percent": None,
                "history": [change.model_dump(mode="json")],
            }
            self._write_state(slug, state)
            return self._entry(slug, av.version, state)

    def _change(
        self,
        state: dict[str, Any],
        version: str,
        to_stage: Stage,
        reason: str,
        numbers: dict[str, Any] | None,
        canary_percent: int | None = None,
    ) -> None:
        rec = state["versions"].setdefault(version, {"stage": "candidate", "canary_percent": None, "history": []})
        change = StageChange(
            at=_now(), from_stage=rec["stage"], to_stage=to_stage, reason=reason, numbers=numbers or {}
        )
        rec["history"].append(change.model_dump(mode="json"))
        rec["stage"] = to_stage
        rec["canary_percent"] = canary_percent if to_stage == "canary" else None

    def set_stage(
        self,
        ref: str,
        stage: str,
        reason: str,
        numbers: dict[str, Any] | None = None,
        canary_percent: int | None = None,
    ) -> ModelVersion:
        """Move ``ref`` to ``stage``; the history of every version touched gets an entry.

        production: the previous production is archived (and remembered for ``rollback``);
        canary: ``canary_percent`` (1-99, default 10) of the author's traffic, the previous canary is
        archived; archived (on purpose): forgotten by ``rollback``, also when a promotion had archived it
        already. The production moved to any other stage is forgotten by ``rollback`` too. Asking for the
        stage a version already has changes nothing otherwise.
        """
        if stage not in STAGES:
            raise InputError(f"unknown stage {stage!r}: one of {', '.join(STAGES)}")
        if stage == "canary":
            canary_percent = DEFAULT_CANARY_PERCENT if canary_percent is None else canary_percent
            if not 1 <= canary_percent <= 99:
                raise InputError(f"canary percent must be between 1 and 99 (got {canary_percent})")
        elif canary_percent is not None:
            raise InputError("a canary percent only goes with --stage canary")
        slug, version = parse_ref(ref)
        self.get(ref)  # unknown -> InputError before anything changes
        with self._locked(slug):
            state = self._read_state(slug)
            rec = state["versions"].get(version, {"stage": "candidate", "canary_percent": None})
            on_stack = version in state["production_stack"]  # archived by a promotion: rollback may restore it
            was_production = rec["stage"] == "production"
            if (
                rec["stage"] == stage
                and rec.get("canary_percent") == canary_percent
                and not (stage == "archived" and on_stack)
            ):
                return self._entry(slug, version, state)
            for other, orec in state["versions"].items():
                if other != version and stage in ("production", "canary") and orec.get("stage") == stage:
                    self._change(state, other, "archived", f"replaced by {slug}/{version}: {reason}", numbers)
            self._change(state, version, stage, reason, numbers, canary_percent)  # type: ignore[arg-type]
            stack = [v for v in state["production_stack"] if v != version]
            if stage == "production":
                state["production_stack"] = [*stack, version]
            elif stage == "archived" or was_production:  # retired or taken off production
                state["production_stack"] = stack  # on purpose: no rollback brings it back
            self._write_state(slug, state)
            return self._entry(slug, version, state)

    def record(self, ref: str, reason: str, numbers: dict[str, Any] | None = None) -> ModelVersion:
        """A history entry that changes no stage (a canary analysis that held or failed, with its numbers)."""
        slug, version = parse_ref(ref)
        self.get(ref)  # unknown -> InputError
        with self._locked(slug):
            state = self._read_state(slug)
            rec = state["versions"].setdefault(version, {"stage": "candidate", "canary_percent": None, "history": []})
            change = StageChange(
                at=_now(), from_stage=rec["stage"], to_stage=rec["stage"], reason=reason, numbers=numbers or {}
            )
            rec["history"].append(change.model_dump(mode="json"))
            self._write_state(slug, state)
            return self._entry(slug, version, state)

    def archive(self, ref: str, reason: str) -> ModelVersion:
        return self.set_stage(ref, "archived", reason)

    def rollback(self, author: str, reason: str) -> ModelVersion:
        """Bring back the production version before the current one (the current is archived). Versions
        archived with ``archive`` (or ``set_stage(..., "archived")``) are off the stack: never brought back.
        None left -> InputError, nothing changed."""
        slug = slugify(author)
        with self._locked(slug):
            state = self._read_state(slug)
            current, stack = _current(state), _stack(state)
            previous = next(iter(_rollback_order(state)), None)
            if previous is None:
                now = f"production stays {slug}/{current}" if current else "no production version now"
                raise InputError(
                    f"{author}: no previous production version left to roll back to ({now}; archived versions are "
                    "not brought back: promote one with twin registry promote REF --stage production)"
                )
            if current is not None:
                self._change(state, current, "archived", f"{ROLLED_BACK_REASON}{slug}/{previous}: {reason}", None)
            self._change(state, previous, "production", f"rollback: {reason}", None)
            state["production_stack"] = stack[: stack.index(previous) + 1]  # the rolled-back ones leave it
            self._write_state(slug, state)
            return self._entry(slug, previous, state)

    # -- weights ------------------------------------------------------------------------------
    def local_weights(self, ref: str) -> Path:
        """The merged-weights folder on local disk (streamed into TWIN_HOME/cache when remote)."""
        mv = self.get(ref)
        if not mv.storage_uri.startswith("s3://"):
            return Path(mv.storage_uri)
        target = self.settings.cache_dir / MODELS_PREFIX / mv.author_slug / mv.version / MERGED_DIR
        if (target / "config.json").is_file():
            return target
        tmp = target.with_name(f".{MERGED_DIR}.tmp-{os.getpid()}")
        shutil.rmtree(tmp, ignore_errors=True)
        prefix = f"{self._name(mv.author_slug)}/{mv.version}/{MERGED_DIR}"
        try:
            for fname in mv.files:
                if fname.startswith(MERGED_DIR + "/"):
                    self.store.get_file(f"{prefix}/{fname[len(MERGED_DIR) + 1 :]}", tmp / fname[len(MERGED_DIR) + 1 :])
            try:
                tmp.rename(target)
            except OSError:  # another process finished first
                shutil.rmtree(tmp, ignore_errors=True)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        return target


def open_registry(settings: Settings) -> ModelRegistry:
    return ModelRegistry(open_artifact_store(settings), settings)


def describe(mv: ModelVersion) -> dict[str, Any]:
    """A JSON-friendly summary for the CLIs."""
    data = json.loads(mv.model_dump_json())
    data["adapter_uri"] = mv.adapter_uri
    return data
