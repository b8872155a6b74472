"""LLM calls of the dataset build, each cached in the artifact store so a re-run makes none.

- The LLM strategy asks any ``LLMBackend`` for instruction/answer pairs per extract, as JSON checked
  with a pydantic schema; a malformed reply drops that extract only (counted).
- Rejected answers for preference pairs come from the production model (the base model until one is
  registered) through THE prompt (``twin_core.llm.prompt.build_messages``) that serving and training use.

Cache keys: (extract hash | instruction, prompt version, model version).
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, Field, ValidationError

from twin_core.datasets.extracts import Extract
from twin_core.llm.base import LLMBackend
from twin_core.llm.prompt import PROMPT_VERSION, ContextChunk, build_messages
from twin_core.progress import ProgressFactory, silent

log = logging.getLogger(__name__)

GENERATION_PROMPT_VERSION = "twin-datasets-llm-v1"
CACHE_PREFIX = "datasets/cache"
PAIRS_PER_EXTRACT = 3
SYSTEM = (
    "You turn a passage written by an author into training data. Reply with JSON only, exactly "
    '{"pairs": [{"instruction": "...", "answer": "..."}]}: up to %d pairs. Each instruction is a request a '
    "reader could make; each answer is written in the author's voice and uses the passage's own sentences."
)


class Pair(BaseModel):
    instruction: str = Field(min_length=10, max_length=500)
    answer: str = Field(min_length=20)


class Reply(BaseModel):
    pairs: list[Pair] = Field(min_length=1, max_length=10)


def _key(kind: str, *parts: str) -> str:
    return f"{CACHE_PREFIX}/{kind}/" + hashlib.sha256("|".join(parts).encode()).hexdigest() + ".json"


def parse_reply(text: str) -> Reply:
    """The JSON object in ``text`` (code fences tolerated) validated; ValueError when malformed."""
    m = re.search(r"\{.*\}", text, re.S)
    if not m:
        raise ValueError("no JSON object in the reply")
    try:
        return Reply.model_validate(json.loads(m.group(0)))
    except (json.JSONDecodeError, ValidationError) as exc:
        raise ValueError(f"malformed reply: {str(exc).splitlines()[0]}") from None


@dataclass(frozen=True)
class RejectedRequest:
    """One rejected answer to write: the instruction, the row's retrieved context, the token budget."""

    instruction: str
    context: tuple[str, ...] = ()
    context_links: tuple[str, ...] = ()
    max_new_tokens: int = 96

    @property
    def size(self) -> int:
        """The prompt's length in characters (what differs between rows of one author)."""
        return len(self.instruction) + sum(len(t) for t in self.context)

    @property
    def _links(self) -> tuple[str, ...]:
        return self.context_links or ("",) * len(self.context)

    @property
    def prompt_order(self) -> tuple[Any, ...]:
        """Sorts requests as their prompts read (each retrieved passage with its link, then the
        instruction): prompts that start alike come one after the other."""
        return (*zip(self._links, self.context, strict=False), ("", self.instruction))

    def messages(self, author: str, tokens: Any) -> list[dict[str, str]]:
        chunks = [ContextChunk(text=t, link=link) for t, link in zip(self.context, self._links, strict=False)]
        return build_messages(self.instruction, chunks, author=author, tokens=tokens).messages

    def cache_key(self, author: str, model_version: str) -> str:
        parts = [self.instruction, author, PROMPT_VERSION, model_version, str(self.max_new_tokens)]
        if self.context:  # rows without context keep the keys (and cached answers) they always had
            parts.append(hashlib.sha256("\x1f".join(self.context).encode()).hexdigest())
        return _key("rejected", *parts)


class CachedLLM:
    """An LLM backend whose answers are kept in the artifact store by key."""

    def __init__(self, llm: LLMBackend, store: Any) -> None:
        self.llm = llm
        self.store = store
        self.calls = 0
        self.hits = 0

    def cached(self, key: str, call: Callable[[], dict[str, Any]]) -> dict[str, Any]:
        if self.store.exists(key):
            self.hits += 1
            return self.store.get_json(key)
        self.calls += 1
        value = call()
        self.store.put_json(key, value)
        return value

    def pairs(self, extract: Extract, max_new_tokens: int = 512) -> list[Pair]:
        """Instruction/answer pairs for ``extract``; ValueError if the (cached) reply is malformed."""
        key = _key("llm", extract.hash, GENERATION_PROMPT_VERSION, self.llm.model_version)

        def call() -> dict[str, Any]:
            messages = [
                {"role": "system", "content": SYSTEM % PAIRS_PER_EXTRACT},
                {"role": "user", "content": f"Title: {extract.title}\n\nPassage:\n{extract.text}"},
            ]
            return {"text": self.llm.chat(messages, max_new_tokens=max_new_tokens, temperature=0.0).text}

        return parse_reply(self.cached(key, call)["text"]).pairs

    def rejected(
        self, requests: list[RejectedRequest], author: str, *, batch_size: int = 16, progress: ProgressFactory = silent
    ) -> list[str]:
        """What the current model answers to each request, through the serving prompt (with the row's
        context); misses go through the continuous engine for the local model (each answer cached as it
        ends, so a killed build keeps them), in batches for another batching backend, one by one
        otherwise. One answer per request, in order."""
        keys = [r.cache_key(author, self.llm.model_version) for r in requests]
        out: dict[str, str] = {}
        missing: dict[str, int] = {}  # key -> first request index (a repeated request is generated once)
        for i, key in enumerate(keys):
            if key in out or key in missing:
                continue
            if self.store.exists(key):
                self.hits += 1
                out[key] = self.store.get_json(key)["text"]
            else:
                missing[key] = i
        from twin_core.llm.local import LocalLLM

        if isinstance(self.llm, LocalLLM):
            # The engine prefills row by row and takes a prompt's start from the one before when they share
            # it: prompts that start with the same retrieved passages go one after the other.
            todo = sorted(missing.values(), key=lambda i: requests[i].prompt_order)
            for i, text in zip(
                todo,
                self._continuous([requests[i] for i in todo], [keys[i] for i in todo], author, batch_size, progress),
                strict=True,
            ):
                out[keys[i]] = text
            return [out[k] for k in keys]
        # Similar prompt lengths share a batch: less padding, and a batch ends with its longest answer.
        todo = sorted(missing.values(), key=lambda i: (requests[i].size, requests[i].max_new_tokens))
        step = batch_size if hasattr(self.llm, "generate_batch") else 1
        for start in progress(range(0, len(todo), step), desc="rejected answers", unit="batch"):
            group = [requests[i] for i in todo[start : start + step]]
            for i, text in zip(todo[start : start + step], self._generate(group, author), strict=True):
                self.calls += 1
                self.store.put_json(keys[i], {"text": text})
                out[keys[i]] = text
        return [out[k] for k in keys]

    def _continuous(
        self, todo: list[RejectedRequest], keys: list[str], author: str, batch_size: int, progress: ProgressFactory
    ) -> list[str]:
        from twin_core.llm.batch_jobs import generate_all
        from twin_core.llm.local import GenRequest

        def keep(i: int, result: Any) -> None:  # engine thread: cache each answer as soon as it ends
            if not isinstance(result, BaseException):
                self.store.put_json(keys[i], {"text": result.text})

        reqs = [GenRequest(r.messages(author, self.llm), r.max_new_tokens) for r in todo]
        gens = generate_all(
            self.llm, reqs, max_batch=batch_size, on_result=keep, progress=progress, desc="rejected answers"
        )
        self.calls += len(gens)
        for g in gens:
            if isinstance(g, BaseException):
                raise g
        return [g.text for g in gens]

    def _generate(self, group: list[RejectedRequest], author: str) -> list[str]:
        messages = [r.messages(author, self.llm) for r in group]
        batch_fn = getattr(self.llm, "generate_batch", None)
        if batch_fn is None:
            return [
                self.llm.chat(m, max_new_tokens=r.max_new_tokens, temperature=0.0).text
                for m, r in zip(messages, group, strict=True)
            ]
        from twin_core.llm.local import GenRequest

        gens = batch_fn([GenRequest(m, r.max_new_tokens) for m, r in zip(messages, group, strict=True)])
        for g in gens:
            if isinstance(g, BaseException):
                raise g
        return [g.text for g in gens]
