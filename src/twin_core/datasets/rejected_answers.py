"""The model that writes the *rejected* answers (and LLM-strategy pairs): the author's production
model from the registry, else the configured base model or OpenAI-compatible endpoint."""

from __future__ import annotations

import logging
from typing import Any

from twin_core.settings import Settings, updated

log = logging.getLogger(__name__)


class GenerationModel:
    """Knows its ``label`` without loading anything (it goes into the dataset's content hash); loads on call."""

    def __init__(self, settings: Settings, author: str) -> None:
        self.settings = settings
        self.author = author
        self.production: Any = None
        if settings.llm.backend == "openai":
            self.label = f"openai:{settings.llm.base_url}:{settings.llm.api_model or settings.llm.model_id}"
            return
        from twin_core.stores.registry import open_registry

        self.production = open_registry(settings).production(author)
        self.label = f"registry:{self.production.ref}" if self.production else f"base:{settings.llm.model_id}"

    def __call__(self) -> Any:
        from twin_core.llm import open_llm

        if self.production is None:
            log.info("rejected answers from %s", self.label)
            return open_llm(self.settings)
        from twin_core.stores.registry import open_registry

        folder = open_registry(self.settings).local_weights(self.production.ref)
        log.info("rejected answers from the production model %s", self.production.ref)
        llm = open_llm(updated(self.settings, llm_model_id=str(folder)))
        llm.model_version = self.production.ref
        return llm
