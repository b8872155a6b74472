"""Which LLM answers ``twin rag query``: by default the author's production twin, as ``twin serve`` answers.

``production`` is the author's production version in the model registry, else the base model (a fresh
install, an author not trained yet); ``base`` is the configured base model (``TWIN_LLM_MODEL_ID``); a version
``<author_slug>/vNNNN`` is that registered model, and only for its own author. An OpenAI-compatible backend
(``TWIN_LLM_BACKEND=openai``) answers with its endpoint's model: the registry's weights are local files.
"""

from __future__ import annotations

import logging

from twin_core.domain.ids import slugify
from twin_core.errors import InputError
from twin_core.llm import LLMBackend
from twin_core.settings import Settings

log = logging.getLogger(__name__)

MODEL_CHOICES = "production (the author's production version, else the base model), base, or <author_slug>/vNNNN"


def check_model_choice(settings: Settings, which: str) -> str:
    """``which`` as given, or an InputError naming what ``--model`` accepts or the unknown version (a registry
    read: checked before any model loads)."""
    if which in ("production", "base"):
        return which
    from twin_core.stores.registry import open_registry, parse_ref

    try:
        parse_ref(which)
    except InputError:
        raise InputError(f"--model {which!r}: expected {MODEL_CHOICES}") from None
    open_registry(settings).get(which)  # an unknown version: InputError
    return which


def open_answering_llm(settings: Settings, author: str, which: str = "production") -> LLMBackend:
    """The LLM that answers for ``author`` (a full name): see the module doc for ``which``."""
    from twin_core.llm import open_llm

    if which == "base" or settings.llm.backend == "openai":
        return open_llm(settings)
    from twin_core.stores.registry import open_registry

    registry = open_registry(settings)
    version = registry.production(author) if which == "production" else registry.get(which)
    if version is None:
        log.info("%s has no production model in the registry: the base model answers", author)
        return open_llm(settings)
    if version.author_slug != slugify(author):
        raise InputError(f"--model {version.ref} is {version.author}'s model, not {author}'s")
    from twin_core.llm.loading import load_local_folder

    log.info("%s's %s model %s answers", author, version.stage, version.ref)
    return load_local_folder(settings, registry.local_weights(version.ref), version.ref)
