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
    version = _load_version(settings, version_id)  # unknown -> InputError
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
    try:
        from twin_core.datasets.versions import latest_version, list_versions
    except ModuleNotFoundError as exc:  # TEMPORARY until twin_core.datasets lands: list the §2 layout
        if not (exc.name or "").startswith("twin_core.datasets"):
            raise
        from twin_core.stores.artifacts import open_artifact_store

        store = open_artifact_store(settings)
        slugs = sorted({k.split("/")[2] for k in store.list(f"datasets/{kind}") if k.count("/") >= 4})
        found = [(slug, store.versions(f"datasets/{kind}/{slug}")) for slug in slugs]
        return [f"{kind}/{slug}/{versions[-1]}" for slug, versions in found if versions]
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


def _load_version(settings: Settings, version_id: str) -> Any:
    try:
        from twin_core.datasets.versions import load_dataset_version
    except ModuleNotFoundError as exc:  # TEMPORARY until twin_core.datasets lands: read the §2 layout
        if not (exc.name or "").startswith("twin_core.datasets"):
            raise
        return _LayoutVersion(settings, version_id)
    return load_dataset_version(settings, version_id)


class _LayoutVersion:
    """A dataset version read straight from ``datasets/<kind>/<slug>/vNNNN/`` (CONTRACTS §2)."""

    def __init__(self, settings: Settings, version_id: str) -> None:
        from twin_core.stores.artifacts import open_artifact_store

        parts = version_id.strip("/").split("/")
        if len(parts) != 3 or parts[0] not in ("instruct", "preference"):
            raise InputError(f"dataset version {version_id!r}: expected instruct|preference/<author_slug>/vNNNN")
        self.store = open_artifact_store(settings)
        self.name = f"datasets/{parts[0]}/{parts[1]}"
        if parts[2] not in self.store.versions(self.name):
            raise InputError(f"unknown dataset version {version_id}")
        self.version_id, self.kind, self.author_slug, self.version = version_id.strip("/"), parts[0], parts[1], parts[2]
        self.metadata = self.store.get_version(self.name, self.version).metadata
        self.author = self.metadata.get("author") or self.author_slug

    def rows(self, split: str) -> list[dict[str, Any]]:
        import io

        import pyarrow.parquet as pq

        fname = f"{split}.parquet"
        if fname not in self.metadata.get("files", []):
            return []
        return pq.read_table(io.BytesIO(self.store.read_version_file(self.name, self.version, fname))).to_pylist()
