"""Dataset versions -> training examples, through THE prompt of serving (``build_messages``).

SFT examples are conversational prompt-completion pairs: ``prompt`` = the system and user messages
serving sends, ``completion`` = the author's answer as the assistant message. TRL renders both with
the model's own chat template and puts the loss on the completion tokens only (SmolLM2's template
has no ``{% generation %}`` markers, so ``assistant_only_loss`` is not an option). DPO examples share
the same prompt with a chosen and a rejected assistant message.

Rows may carry a ``context`` (a string or a list of strings): the source text the instruction was
made from; it is placed in the ``<context>`` block exactly as retrieved chunks are at serving time.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from twin_core.errors import InputError
from twin_core.llm.prompt import ContextChunk, build_messages, render_prompt
from twin_core.settings import Settings

Messages = list[dict[str, str]]


@dataclass
class TrainingData:
    version_id: str
    kind: str  # "instruct" | "preference"
    author: str
    author_slug: str
    train: list[dict[str, Any]]
    test: list[dict[str, Any]]
    metadata: dict[str, Any] = field(default_factory=dict)


def load_training_data(settings: Settings, version_id: str, kind: str) -> TrainingData:
    """Rows of a dataset version (CONTRACTS §2), sorted by id so every run sees the same data order."""
    from twin_core.datasets.versions import load_dataset_version

    version = load_dataset_version(settings, version_id)  # unknown -> InputError
    if version.kind != kind:
        raise InputError(f"dataset {version_id} is a {version.kind} dataset; this step needs a {kind} dataset")
    train = sorted(version.rows("train"), key=lambda r: str(r.get("id", "")))
    test = sorted(version.rows("test"), key=lambda r: str(r.get("id", "")))
    needed = ("instruction", "answer") if kind == "instruct" else ("instruction", "chosen", "rejected")
    train = [r for r in train if all(str(r.get(k) or "").strip() for k in needed)]
    test = [r for r in test if all(str(r.get(k) or "").strip() for k in needed)]
    if not train:
        raise InputError(f"dataset {version_id} has no usable training rows (needs {', '.join(needed)})")
    return TrainingData(
        version_id=version.version_id,
        kind=kind,
        author=version.author,
        author_slug=version.author_slug,
        train=train,
        test=test,
        metadata=dict(version.metadata),
    )


def dataset_versions(settings: Settings, kind: str) -> list[str]:
    """The newest ``kind`` dataset version of every author (``<kind>/<slug>/vNNNN``)."""
    from twin_core.datasets.versions import latest_version, list_versions

    slugs = sorted({v.split("/")[1] for v in list_versions(settings, kind)})
    return [v for v in (latest_version(settings, kind, slug) for slug in slugs) if v]


def _contexts(row: dict[str, Any]) -> list[ContextChunk]:
    ctx = row.get("context")
    if not ctx:
        return []
    texts = [ctx] if isinstance(ctx, str) else [str(t) for t in ctx if str(t).strip()]
    return [
        ContextChunk(text=t, link=str(row.get("link") or ""), category=str(row.get("category") or "")) for t in texts
    ]


def prompt_messages(row: dict[str, Any], author: str, tokens: Any = None) -> Messages:
    """The system + user messages serving would send for this row's instruction."""
    return build_messages(str(row["instruction"]), _contexts(row), author=author, tokens=tokens).messages


def sft_example(row: dict[str, Any], author: str, tokens: Any = None) -> dict[str, Messages]:
    messages = build_messages(
        str(row["instruction"]), _contexts(row), author=author, tokens=tokens, answer=str(row["answer"]).strip()
    ).messages
    return {"prompt": messages[:-1], "completion": messages[-1:]}


def dpo_example(row: dict[str, Any], author: str, tokens: Any = None) -> dict[str, Messages]:
    prompt = prompt_messages(row, author, tokens)
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
