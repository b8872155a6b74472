"""Training rows whose answer the profile's ``max_length`` cuts off whole, found before the model loads.

TRL keeps the start of an example (``truncation_mode="keep_start"``): a prompt (the system message, the
row's retrieved context and the question) of ``max_length`` tokens or more leaves no answer token to learn
from. Unpacked SFT and DPO drop such rows, so a dataset made only of them failed deep inside the Trainer
("num_samples=0", exit 1); packed SFT keeps them with no label, so the run "trained" with loss 0.0 and
registered the base model as a candidate. Here a dataset none of whose rows fits is bad input (exit 3,
nothing loaded, nothing registered) and a partial fit is a WARNING that says how many rows train nothing.

The retrieved context is what fills a prompt: datasets attach as much as serving sends (1024 tokens by
default), which the CPU profiles' ``max_length`` of 384 cannot hold. A profile too short for the served
context plus ``ANSWER_ROOM`` trains on prompts whose context is cut to fit (``context_budget``; the first
chunk truncated, the others dropped, as serving does past its budget), so the answer is still learned.
"""

from __future__ import annotations

import logging
from typing import Any

from twin_core.errors import InputError
from twin_core.llm import rows
from twin_core.llm.prompt import SERVED_CONTEXT_TOKENS, render_prompt

log = logging.getLogger(__name__)

ANSWER_ROOM = 1024  # tokens an example keeps beside its context: system message, question and answer
# The least context a training prompt carries: a <source> block's tags and link take about 60 tokens, so 128 keep
# one chunk of about 64 tokens of text whole (the demo's datasets attach this much).
MIN_CONTEXT = 128


def context_budget(max_length: int) -> int:
    """Tokens of retrieved context in a training prompt: serving's, unless ``max_length`` is too short for it
    plus ``ANSWER_ROOM`` (then what is left, at least ``MIN_CONTEXT``)."""
    return max(MIN_CONTEXT, min(SERVED_CONTEXT_TOKENS, max_length - ANSWER_ROOM))


def examples(plan: Any, tokenizer: Any, split: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The chat examples of ``split`` as the run trains on them: the served prompt, its context cut to
    ``context_budget`` (counted with the model's tokenizer) where the profile is too short for serving's."""
    from twin_core.llm.local import TokenizerCounter

    make = rows.sft_example if plan.kind == "sft" else rows.dpo_example
    budget = context_budget(plan.profile.max_length)
    if budget >= SERVED_CONTEXT_TOKENS:
        return [make(row, plan.data.author) for row in split]
    tokens = TokenizerCounter(tokenizer)
    return [make(row, plan.data.author, tokens, budget) for row in split]


def prompt_tokens(tokenizer: Any, plan: Any, train: list[dict[str, Any]] | None = None) -> list[int]:
    """The prompt's token count of every training row as the run trains on it (as TRL tokenizes it: the chat
    template's text); ``train``: those examples, when already rendered (``examples``)."""
    counts = []
    for example in train if train is not None else examples(plan, tokenizer, plan.data.train):
        prompt = render_prompt(tokenizer, example["prompt"])
        counts.append(len(tokenizer(prompt, add_special_tokens=False)["input_ids"]))
    return counts


def check_answers_fit(tokenizer: Any, plan: Any) -> list[dict[str, Any]]:
    """The training examples (``examples``: rendered once, for the check and the Trainer); InputError when
    ``max_length`` leaves no answer token in any of them, a WARNING when in some."""
    limit = plan.profile.max_length
    budget = context_budget(limit)
    with_context = any(row.get("context") for row in plan.data.train)
    if budget < SERVED_CONTEXT_TOKENS and with_context:
        log.info(
            "--profile %s: max_length %d: training prompts carry at most %d tokens of retrieved context (serving "
            "sends up to %d), so the answers fit", plan.profile.name, limit, budget, SERVED_CONTEXT_TOKENS,
        )  # fmt: skip
    train = examples(plan, tokenizer, plan.data.train)
    counts = prompt_tokens(tokenizer, plan, train)
    cut = [n for n in counts if n >= limit]
    if not cut:
        return train
    where = f"--profile {plan.profile.name}: max_length {limit}"
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
    return train
