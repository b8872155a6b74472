"""Base-model resolution (offline): where a base model's plain weights are, for training and evaluation.

Trainer refuses GGUF-quantized weights, so the packaged SmolLM2 GGUF is resolved to the safetensors
copy ``twin_core.llm.loading`` converts once (``models_dir/smollm2-135m-instruct``).
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

from twin_core.errors import ConfigError
from twin_core.settings import Settings, updated

log = logging.getLogger(__name__)


def offline(settings: Settings) -> bool:
    """Hugging Face loads read only the local cache (settings or ``HF_HUB_OFFLINE``)."""
    return settings.hf_offline or os.environ.get("HF_HUB_OFFLINE", "0") not in ("", "0")


def resolve_base(settings: Settings, base_model: str) -> str:
    """A loadable location for ``base_model``: a local safetensors folder or a cached Hub id.

    The packaged SmolLM2 GGUF is converted once (through ``load_local_llm``); a model that cannot be
    loaded offline is a ConfigError naming it.
    """
    from twin_core.llm.loading import PACKAGED_ID, load_local_llm, resolve_source

    name = base_model.strip()
    if name.lower() in (PACKAGED_ID, "packaged", ""):
        packaged = updated(settings, llm_model_id=PACKAGED_ID, llm_model_version=None)
        source = resolve_source(packaged)
        if source.gguf_file:
            log.info("converting the packaged SmolLM2 GGUF to safetensors once (training needs plain weights)")
            load_local_llm(packaged)
            source = resolve_source(packaged)
        return source.location
    path = Path(name).expanduser()
    if path.exists():
        if not (path / "config.json").is_file():
            raise ConfigError(f"base model {name}: no config.json (a GGUF or partial folder cannot be trained)")
        return str(path)
    local_only = offline(settings)
    try:
        from transformers import AutoConfig

        AutoConfig.from_pretrained(name, local_files_only=local_only)
    except Exception as exc:  # noqa: BLE001 - any failure means: cannot load it here
        raise ConfigError(unavailable_message(name, local_only, type(exc).__name__)) from None
    return name


def unavailable_message(name: str, local_only: bool, error: str) -> str:
    """Why ``name`` cannot be loaded, and what to change. Offline is ``TWIN_HF_OFFLINE`` (default true) or
    ``HF_HUB_OFFLINE``: the Hub is reached only when the first is false and the second unset or 0."""
    if local_only:
        return (
            f"base model {name!r} cannot be loaded offline (not in the Hugging Face cache; download it first, "
            f"or set TWIN_HF_OFFLINE=false with HF_HUB_OFFLINE unset or 0 to fetch it from the Hub): {error}"
        )
    return f"base model {name!r} cannot be loaded (not a local folder, and the Hub did not give it): {error}"
