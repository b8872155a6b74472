"""Demo stage ``datasets.build``: both datasets of every author from the features just built.

Extractive instructions over the whole corpus (no LLM, no key), each with a short retrieved context (the
demo trains cpu-tiny on 384 tokens), and a handful of preference pairs whose rejected answers the base
model writes (kept few and short so the demo stays within minutes), plus the other-author contrast pairs
when the warehouse holds a second author.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

DEMO_REJECTED = 4
DEMO_CONTEXT_TOKENS = 64  # cpu-tiny trains on 384 tokens: the served prompt must leave room for the answer
DEMO_REJECTED_TOKENS = 48  # the chosen text is cut to the same budget: ≥ 100 characters needs ~30 tokens


def stage(sample: Path) -> dict[str, Any]:
    from twin_core.datasets.build import BuildOptions, build_author
    from twin_core.datasets.rejected_answers import GenerationModel
    from twin_core.progress import progress
    from twin_core.settings import get_settings, updated
    from twin_core.stores.warehouse import open_warehouse

    settings = updated(
        get_settings(),
        datasets_rejected_max_new_tokens=DEMO_REJECTED_TOKENS,
        datasets_context_tokens=DEMO_CONTEXT_TOKENS,
    )
    opts = BuildOptions(strategy="extractive", seed=settings.datasets.seed, max_rejected=DEMO_REJECTED)
    out: dict[str, Any] = {}
    for user in open_warehouse(settings).users():
        built = build_author(
            settings, user.full_name, opts, open_model=GenerationModel(settings, user.full_name), progress=progress
        )
        out[built.slug] = {
            "versions": built.versions,
            "created": built.created,
            "instruct": built.stats.get("instruct"),
            "preference": built.stats.get("preference"),
            "forms_used": built.stats.get("forms_used"),
            "unchanged": built.stats.get("unchanged", False),
        }
    return {"authors": out}
