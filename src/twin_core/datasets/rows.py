"""Rows of the two datasets: instruction rows (extractive or LLM-written) and preference pairs.

Row ids are sha256 of the kind and the row's content (extract hash, instruction), never of a random
or run-dependent value, so the same corpus gives the same ids on every machine.
"""

from __future__ import annotations

import hashlib
import logging
from collections import Counter
from typing import Any

from twin_core.datasets import quality
from twin_core.datasets.extracts import Extract
from twin_core.datasets.generate import CachedLLM
from twin_core.datasets.instructions import write_instruction
from twin_core.errors import ConfigError
from twin_core.progress import ProgressFactory

log = logging.getLogger(__name__)
Row = dict[str, Any]
MIN_CHOSEN_CHARS = 100


def row_id(kind: str, *parts: str) -> str:
    return hashlib.sha256("|".join((kind, *parts)).encode()).hexdigest()[:32]


def _base(ex: Extract) -> Row:
    return {"document_id": ex.document_id, "category": ex.category, "link": ex.link}


def _llm_rows(ex: Extract, gen: CachedLLM, dropped: Counter) -> list[Row]:
    try:
        pairs = gen.pairs(ex)
    except ValueError as exc:
        dropped["malformed_reply"] += 1
        log.warning("extract %s/%d dropped: %s", ex.document_id, ex.index, exc)
        return []
    return [
        {"id": row_id("i", ex.hash, p.instruction), "instruction": p.instruction.strip(), "answer": p.answer.strip()}
        | _base(ex)
        for p in pairs
    ]


def instruct_rows(
    extracts: list[Extract], strategy: str, seed: int, gen: CachedLLM | None, progress: ProgressFactory
) -> tuple[list[Row], Counter, Counter]:
    """(rows, instruction forms used, extracts dropped by reason)."""
    if strategy == "llm" and gen is None:
        raise ConfigError("the llm strategy needs a model (TWIN_LLM_BACKEND / TWIN_LLM_BASE_URL)")
    rows: list[Row] = []
    forms: Counter = Counter()
    dropped: Counter = Counter()
    for ex in progress(extracts, desc=f"instructions ({strategy})", unit="extract"):
        if strategy == "llm" and gen is not None:
            made = _llm_rows(ex, gen, dropped)
            forms["llm"] += len(made)
            rows += made
            continue
        form, instruction = write_instruction(ex, seed)
        forms[form] += 1
        rows.append(
            {"id": row_id("i", ex.hash, instruction), "instruction": instruction, "answer": ex.text} | _base(ex)
        )
    return rows, forms, dropped


def chosen_text(row: Row) -> str:
    """The author's text of a pair: code whole, prose cut after its last full sentence."""
    return row["answer"] if row["category"] == "repositories" else quality.whole_sentences(row["answer"])


def pair_candidates(rows: list[Row], limit: int) -> list[tuple[Row, str]]:
    """Up to ``limit`` (row, chosen text) with ≥ 100 characters, both splits represented in proportion
    (at least one held-out pair when there is one), so a preference version never has an empty test split."""
    usable: dict[str, list[tuple[Row, str]]] = {"train": [], "test": []}
    for r in rows:
        chosen = chosen_text(r)
        if len(chosen) >= MIN_CHOSEN_CHARS:
            usable[r["split"]].append((r, chosen))
    total = len(usable["train"]) + len(usable["test"])
    if total <= limit:
        return usable["train"] + usable["test"]
    n_test = min(len(usable["test"]), max(1, round(limit * len(usable["test"]) / total))) if limit > 1 else 0
    train = usable["train"][: limit - n_test]
    return train + usable["test"][: limit - len(train)]


def preference_row(row: Row, chosen: str, rejected: str, kind: str) -> Row:
    """A pair on ``row``'s instruction; ``kind`` says where the rejected side comes from."""
    return {
        "id": row_id("p", row["id"]) if kind == "model" else row_id("p", row["id"], kind),
        "instruction": row["instruction"],
        "chosen": chosen,
        "rejected": rejected,
        "rejected_kind": kind,
        "document_id": row["document_id"],
        "category": row["category"],
        "link": row["link"],
        "split": row["split"],
        **({"context": row["context"]} if "context" in row else {}),
    }


def model_pairs(
    rows: list[Row], author: str, limit: int, gen: CachedLLM, max_new_tokens: int, progress: ProgressFactory
) -> list[Row]:
    """chosen = the author's verbatim text; rejected = the current model's answer to the same prompt."""
    candidates = pair_candidates(rows, limit)
    answers = gen.rejected([r["instruction"] for r, _ in candidates], author, max_new_tokens, progress=progress)
    out = []
    for r, chosen in candidates:
        rejected = answers[r["instruction"]].strip()
        if rejected and rejected != chosen:
            out.append(preference_row(r, chosen, rejected, "model"))
    return out
