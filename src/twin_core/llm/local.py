"""The local transformers LLM (``LocalLLM``): chat, batched generation with per-row stop and cancel, exact
token counts. ``loading.py`` loads it (a Hub id, a folder, or the packaged SmolLM2 GGUF) and places it.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from twin_core.errors import InputError
from twin_core.llm.base import Generation, Messages

log = logging.getLogger(__name__)

REPETITION_PENALTY = 1.2  # small greedy models loop ("The answer is: The answer is: ...") without it


class TokenizerCounter:
    """Exact token counts and truncation with a model's own tokenizer."""

    def __init__(self, tokenizer: Any) -> None:
        self.tokenizer = tokenizer

    def count_tokens(self, text: str) -> int:
        return len(self.tokenizer(text, add_special_tokens=False)["input_ids"])

    def truncate(self, text: str, max_tokens: int) -> str:
        ids = self.tokenizer(text, add_special_tokens=False)["input_ids"]
        return text if len(ids) <= max_tokens else self.tokenizer.decode(ids[:max_tokens])


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
