"""The LLM backends (local transformers, OpenAI-compatible HTTP) and the one prompt.

Shared by datasets (generation), training (chat template), evaluation (judge) and serving. The backends
import only ``base``; ``open_llm`` picks one from the settings. Importing this package loads no model.
"""

from __future__ import annotations

from twin_core.llm.base import Generation, LLMBackend, Messages
from twin_core.settings import Settings

__all__ = ["Generation", "LLMBackend", "Messages", "open_llm"]


def open_llm(settings: Settings) -> LLMBackend:
    """The backend the settings select (TWIN_LLM_BACKEND)."""
    if settings.llm.backend == "openai":
        from twin_core.llm.openai import OpenAICompatibleLLM

        return OpenAICompatibleLLM.from_settings(settings)
    from twin_core.llm.loading import load_local_llm

    return load_local_llm(settings)
