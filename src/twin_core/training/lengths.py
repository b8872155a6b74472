"""Training rows whose answer the profile's ``max_length`` cuts off whole, found before the model loads.

TRL keeps the start of an example (``truncation_mode="keep_start"``): a prompt (the system message, the
row's retrieved context and the question) of ``max_length`` tokens or more leaves no answer token to learn
from. Unpacked SFT and DPO drop such rows, so a dataset made only of them failed deep inside the Trainer
("num_samples=0", exit 1); packed SFT keeps them with no label, so the run "trained" with loss 0.0 and
registered the base model as a candidate. Here a dataset none of whose rows fits is bad input (exit 3,
nothing loaded, nothing registered) and a partial fit is a WARNING that says how many rows train nothing.
"""

from __future__ import annotations

import logging
from typing import Any

from twin_core.errors import InputError
from twin_core.llm import rows
from twin_core.llm.prompt import render_prompt

log = logging.getLogger(__name__)


def prompt_tokens(tokenizer: Any, plan: Any) -> list[int]:
    """The served prompt's token count of every training row (as TRL tokenizes it: the chat template's text)."""
    make = rows.sft_example if plan.kind == "sft" else rows.dpo_example
    counts = []
    for row in plan.data.train:
        prompt = render_prompt(tokenizer, make(row, plan.data.author)["prompt"])
        counts.append(len(tokenizer(prompt, add_special_tokens=False)["input_ids"]))
    return counts


def check_answers_fit(tokenizer: Any, plan: Any) -> None:
    """InputError when ``max_length`` leaves no answer token in any training row; a WARNING when in some."""
    limit = plan.profile.max_length
    counts = prompt_tokens(tokenizer, plan)
    cut = [n for n in counts if n >= limit]
    if not cut:
        return
    where = f"--profile {plan.profile.name}: max_length {limit}"
    with_context = any(row.get("context") for row in plan.data.train)
    fix = f"raise max_length to more than {max(counts)} in {plan.profile.source or 'the profile'}"
    if with_context:
        fix += (
            ", or rebuild the dataset with less retrieved context per row (TWIN_DATASETS_CONTEXT_TOKENS, e.g. 64, "
            "then `twin datasets build`)"
        )
    if len(cut) == len(counts):
        parts = "system message, retrieved context and question" if with_context else "system message and question"
        sizes = f"{min(counts)}-{max(counts)}" if min(counts) != max(counts) else str(max(counts))
        raise InputError(
            f"{where} leaves no answer token in any of the {len(counts)} training rows of {plan.data.version_id}: "
            f"their prompts ({parts}) are {sizes} tokens, so nothing would be learned; {fix}"
        )
    log.warning(
        "%s cuts the whole answer off %d of the %d training rows of %s (prompts of %d tokens or more): they train "
        "nothing; %s",
        where, len(cut), len(counts), plan.data.version_id, limit, fix,
    )  # fmt: skip
