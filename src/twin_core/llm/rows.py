"""Dataset rows -> chat examples, through THE prompt of serving (``build_messages``).

SFT examples are conversational prompt-completion pairs: ``prompt`` = the system and user messages
serving sends, ``completion`` = the author's answer as the assistant message. TRL renders both with
the model's own chat template and puts the loss on the completion tokens only (SmolLM2's template
has no ``{% generation %}`` markers, so ``assistant_only_loss`` is not an option). DPO examples share
the same prompt with a chosen and a rejected assistant message.

Rows may carry a ``context`` (a string or a list of strings: the author's other writing retrieved for
the instruction); it fills the ``<context>`` block exactly as retrieved chunks do at serving time.
Training and evaluation both render rows here, so neither imports the other.
"""

from __future__ import annotations

from typing import Any

from twin_core.errors import InputError
from twin_core.llm.prompt import SERVED_CONTEXT_TOKENS, ContextChunk, build_messages, render_prompt

Messages = list[dict[str, str]]


def row_contexts(row: dict[str, Any]) -> list[ContextChunk]:
    """The row's ``context`` column as the chunks serving would have retrieved."""
    ctx = row.get("context")
    if not ctx:
        return []
    texts = [ctx] if isinstance(ctx, str) else [str(t) for t in ctx if str(t).strip()]
    return [
        ContextChunk(text=t, link=str(row.get("link") or ""), category=str(row.get("category") or "")) for t in texts
    ]


def prompt_messages(
    row: dict[str, Any], author: str, tokens: Any = None, context_budget: int = SERVED_CONTEXT_TOKENS
) -> Messages:
    """The system + user messages serving would send for this row's instruction (``context_budget``: tokens of
    retrieved context, serving's by default)."""
    return build_messages(
        str(row["instruction"]), row_contexts(row), author=author, tokens=tokens, context_budget=context_budget
    ).messages


def sft_example(
    row: dict[str, Any], author: str, tokens: Any = None, context_budget: int = SERVED_CONTEXT_TOKENS
) -> dict[str, Messages]:
    messages = build_messages(
        str(row["instruction"]), row_contexts(row), author=author, tokens=tokens, context_budget=context_budget,
        answer=str(row["answer"]).strip(),
    ).messages  # fmt: skip
    return {"prompt": messages[:-1], "completion": messages[-1:]}


def dpo_example(
    row: dict[str, Any], author: str, tokens: Any = None, context_budget: int = SERVED_CONTEXT_TOKENS
) -> dict[str, Messages]:
    prompt = prompt_messages(row, author, tokens, context_budget)
    return {
        "prompt": prompt,
        "chosen": [{"role": "assistant", "content": str(row["chosen"]).strip()}],
        "rejected": [{"role": "assistant", "content": str(row["rejected"]).strip()}],
    }


def prompt_and_answer_text(
    tokenizer: Any, example: dict[str, Messages], answer_key: str = "completion"
) -> tuple[str, str]:
    """(prompt text as served, answer text as trained) through the tokenizer's chat template."""
    prompt = render_prompt(tokenizer, example["prompt"])
    full = tokenizer.apply_chat_template(example["prompt"] + example[answer_key], tokenize=False)
    if not full.startswith(prompt):
        raise InputError("the chat template renders the prompt differently with and without the answer")
    return prompt, full[len(prompt) :]
