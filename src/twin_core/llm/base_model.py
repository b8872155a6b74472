"""Base-model resolution (offline): where a base model's plain weights are, for training and evaluation.

Trainer refuses GGUF-quantized weights, so a GGUF base is resolved to a de-quantized safetensors copy, converted
once by ``twin_core.llm.loading.convert_gguf``: the packaged SmolLM2 GGUF to ``models_dir/smollm2-135m-instruct``
(the copy serving uses), any other local ``.gguf`` file (or a folder holding one and no config.json) to
``models_dir/gguf/<stem>-<path hash>-<size+mtime hash>``, so a changed file is converted again (its older copy
is kept and named in the log: a run may still train on it). A Hub repository of GGUF files is not fetched:
``gguf_problem`` says what to give instead.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
from pathlib import Path

from twin_core.errors import ConfigError
from twin_core.settings import Settings, updated

log = logging.getLogger(__name__)


def offline(settings: Settings) -> bool:
    """Hugging Face loads read only the local cache (settings or ``HF_HUB_OFFLINE``)."""
    return settings.hf_offline or os.environ.get("HF_HUB_OFFLINE", "0") not in ("", "0")


def _packaged(name: str) -> bool:
    from twin_core.llm.loading import PACKAGED_ID

    return name.lower() in (PACKAGED_ID, "packaged", "")


def _gguf_files(path: Path) -> list[Path]:
    """The .gguf files of a folder that has no config.json (a folder with one is plain weights)."""
    if not path.is_dir() or (path / "config.json").is_file():
        return []
    return sorted(p for p in path.glob("*.gguf") if p.is_file())


def local_gguf(base_model: str) -> Path | None:
    """The local GGUF file ``base_model`` names: a ``.gguf`` file, or the only one of a folder without
    config.json; None for anything else (the packaged SmolLM2 included)."""
    name = base_model.strip()
    path = Path(name).expanduser()
    if _packaged(name):
        return None
    if path.is_file() and path.suffix.lower() == ".gguf":
        return path
    files = _gguf_files(path)
    return files[0] if len(files) == 1 else None


def gguf_problem(base_model: str) -> str | None:
    """Why ``base_model`` is GGUF weights that ``resolve_base`` cannot de-quantize, and what to give instead
    (a phrase that follows the name); None when it is not GGUF, or is a local file it converts."""
    name = base_model.strip()
    path = Path(name).expanduser()
    if _packaged(name):
        return None
    files = _gguf_files(path)
    if len(files) > 1:
        return (
            f"is a folder of {len(files)} GGUF files ({', '.join(f.name for f in files)}) and no config.json: "
            "give the path of the .gguf file to use (it is de-quantized once for you)"
        )
    if path.exists():
        return None
    if path.suffix.lower() == ".gguf":
        return "is no file here: give the path of an existing .gguf file (it is de-quantized once for you)"
    if name.lower().endswith("gguf"):
        return (
            "is a Hub repository of GGUF-quantized weights, which is not downloaded for you (the trainer needs "
            "plain weights): download its .gguf file (huggingface-cli download REPO FILE.gguf) and give that "
            "file's path (it is de-quantized once for you), or give the Hub id of the model the GGUF was made from"
        )
    return None


def converted_gguf(settings: Settings, gguf: Path) -> Path:
    """Where the de-quantized copy of ``gguf`` is kept: keyed by the file's path, size and mtime."""
    from twin_core.llm.loading import models_dir

    stat = gguf.stat()
    where = hashlib.sha256(str(gguf.resolve()).encode()).hexdigest()[:10]
    state = hashlib.sha256(f"{stat.st_size}:{stat.st_mtime_ns}".encode()).hexdigest()[:10]
    stem = re.sub(r"[^A-Za-z0-9._-]+", "-", gguf.stem).strip(".-") or "model"
    return models_dir(settings) / "gguf" / f"{stem}-{where}-{state}"


def _dequantized(settings: Settings, gguf: Path) -> str:
    """A GGUF file's safetensors copy, converted once. The copy of the file before it changed is kept, and
    named in a log line: a run still training on it reloads it to merge (QLoRA), so it is never removed here."""
    from twin_core.llm.loading import convert_gguf

    target = converted_gguf(settings, gguf)
    if (target / "config.json").is_file():
        return str(target)
    log.info("de-quantizing %s once to %s (Trainer refuses GGUF-quantized weights)", gguf, target)
    convert_gguf(gguf, target)
    for stale in target.parent.glob(f"{target.name.rsplit('-', 1)[0]}-*"):
        if stale != target and stale.is_dir() and not stale.name.startswith("."):
            log.info("%s is the de-quantized copy of %s before it changed: delete it once no run uses it", stale, gguf)
    return str(target)


def _packaged_base(settings: Settings) -> str:
    from twin_core.llm.loading import PACKAGED_DIRNAME, PACKAGED_ID, convert_gguf, models_dir, resolve_source

    source = resolve_source(updated(settings, llm_model_id=PACKAGED_ID, llm_model_version=None))
    if not source.gguf_file:
        return source.location
    log.info("converting the packaged SmolLM2 GGUF to safetensors once (training needs plain weights)")
    return convert_gguf(Path(source.location) / source.gguf_file, models_dir(settings) / PACKAGED_DIRNAME)


def resolve_base(settings: Settings, base_model: str) -> str:
    """A loadable location for ``base_model``: a local safetensors folder or a cached Hub id.

    A GGUF base (the packaged SmolLM2, a local ``.gguf`` file, a folder holding one and no config.json) is
    de-quantized once (``convert_gguf``); GGUF weights it cannot convert (``gguf_problem``) and a model that
    cannot be loaded offline are a ConfigError naming them.
    """
    name = base_model.strip()
    if _packaged(name):
        return _packaged_base(settings)
    problem = gguf_problem(name)
    if problem:
        raise ConfigError(f"base model {name!r} {problem}")
    gguf = local_gguf(name)
    if gguf is not None:
        return _dequantized(settings, gguf)
    path = Path(name).expanduser()
    if path.exists():
        if not (path / "config.json").is_file():
            raise ConfigError(
                f"base model {name}: no config.json and no .gguf file (a partial folder cannot be trained)"
            )
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
