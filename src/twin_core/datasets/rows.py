"""Instruction rows, extractive or LLM-written (preference pairs are ``pairs.py``).

Row ids are sha256 of the kind and the row's content (extract hash, instruction), never of a random
or run-dependent value, so the same corpus gives the same ids on every machine.
"""

from __future__ import annotations

import hashlib
import logging
from collections import Counter
from typing import Any

from twin_core.datasets.extracts import Extract
from twin_core.datasets.generate import CachedLLM
from twin_core.datasets.instructions import write_instruction
from twin_core.errors import ConfigError
from twin_core.progress import ProgressFactory

log = logging.getLogger(__name__)
Row = dict[str, Any]


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
