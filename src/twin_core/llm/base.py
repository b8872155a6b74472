"""One interface over every LLM backend: local transformers or an OpenAI-compatible HTTP endpoint.

Used by RAG serving now, and by dataset generation and judging later. Messages are chat messages
(``[{"role": "system"|"user"|"assistant", "content": str}]``), built by ``twin_core.llm.prompt``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, runtime_checkable

Messages = list[dict[str, str]]


@dataclass
class Generation:
    text: str
    prompt_tokens: int
    completion_tokens: int
    model_version: str
    seconds: float


@runtime_checkable
class LLMBackend(Protocol):
    model_version: str

    def count_tokens(self, text: str) -> int:
        """Tokens of ``text`` for this model (an estimate for remote models without a local tokenizer)."""
        ...

    def truncate(self, text: str, max_tokens: int) -> str:
        """``text`` cut to at most ``max_tokens`` tokens."""
        ...

    def chat(
        self, messages: Messages, *, max_new_tokens: int, temperature: float = 0.0, timeout_s: float | None = None
    ) -> Generation:
        """Answer the conversation; raises BackendUnavailable when the model cannot be reached."""
        ...
