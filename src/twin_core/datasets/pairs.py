"""Preference pairs: chosen = the author's own text; rejected = what the author did *not* write.

Two kinds, both on the same prompt (the row's instruction and retrieved context, as served):
- ``model``: the current model's answer (the production model, else the base), generated with the same
  token budget as the chosen text, which is cut to whole sentences within that budget first: the two
  sides have the same length, so DPO cannot learn "longer is better".
- ``other_author``: another author's passage on the nearest topic (the nearest chunk of any other author
  in the feature store to the chosen text), cut to the same budget: it teaches what separates this
  author from the others, not the genre. Only when the feature store holds other authors.
The metadata counts what each kind adds.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from twin_core.datasets import quality
from twin_core.datasets.generate import CachedLLM, RejectedRequest
from twin_core.datasets.rows import row_id
from twin_core.progress import ProgressFactory, silent

Row = dict[str, Any]
MIN_CHOSEN_CHARS = 100


class CharTokens:
    """~4 characters per token, when no model tokenizer is at hand."""

    def count_tokens(self, text: str) -> int:
        return max(1, len(text) // 4)

    def truncate(self, text: str, max_tokens: int) -> str:
        return text[: max_tokens * 4]


def fit(text: str, budget: int, tokens: Any, is_code: bool) -> str:
    """``text`` within ``budget`` tokens, cut after a whole sentence (prose) or line (code)."""
    cut = tokens.truncate(text, budget)
    if cut == text:
        return text.strip()
    if is_code:
        return cut[: cut.rfind("\n")].rstrip() if "\n" in cut else cut.strip()
    return quality.whole_sentences(cut)


def pair_candidates(rows: list[Row], limit: int, budget: int, tokens: Any) -> list[tuple[Row, str]]:
    """Up to ``limit`` (row, chosen text within ``budget`` tokens, ≥ 100 characters), both splits in
    proportion (≥ 1 held out when there is one), so a preference version never has an empty test split."""
    usable: dict[str, list[tuple[Row, str]]] = {"train": [], "test": []}
    for r in rows:
        chosen = fit(r["answer"], budget, tokens, r["category"] == "repositories")
        if len(chosen) >= MIN_CHOSEN_CHARS:
            usable[r["split"]].append((r, chosen))
    total = len(usable["train"]) + len(usable["test"])
    if total <= limit:
        return usable["train"] + usable["test"]
    n_test = min(len(usable["test"]), max(1, round(limit * len(usable["test"]) / total))) if limit > 1 else 0
    train = usable["train"][: limit - n_test]
    return train + usable["test"][: limit - len(train)]


def preference_row(row: Row, chosen: str, rejected: str, kind: str) -> Row:
    """A pair on ``row``'s prompt; ``kind`` says where the rejected side comes from."""
    return {
        "id": row_id("p", row["id"]) if kind == "model" else row_id("p", row["id"], kind),
        "instruction": row["instruction"],
        "chosen": chosen,
        "rejected": rejected,
        "rejected_kind": kind,
        "rejected_author": "",
        "document_id": row["document_id"],
        "category": row["category"],
        "link": row["link"],
        "split": row["split"],
        "context": list(row.get("context") or []),
        "context_links": list(row.get("context_links") or []),
    }


def model_pairs(
    candidates: list[tuple[Row, str]], author: str, gen: CachedLLM, tokens: Any, progress: ProgressFactory = silent
) -> list[Row]:
    """Rejected = the model's answer to the same served prompt, with the chosen text's token budget."""
    requests = [
        RejectedRequest(
            r["instruction"],
            tuple(r.get("context") or ()),
            tuple(r.get("context_links") or ()),
            tokens.count_tokens(chosen),
        )
        for r, chosen in candidates
    ]
    answers = gen.rejected(requests, author, progress=progress)
    return [
        preference_row(r, chosen, rejected.strip(), "model")
        for (r, chosen), rejected in zip(candidates, answers, strict=True)
        if rejected.strip() and rejected.strip() != chosen
    ]


def contrast_pairs(candidates: list[tuple[Row, str]], author: str, neighbours: Any, tokens: Any) -> list[Row]:
    """Rejected = another author's nearest passage (to the chosen text), cut to the chosen text's budget."""
    passages = neighbours.other_author_passages([chosen for _, chosen in candidates], author)
    out = []
    for (r, chosen), passage in zip(candidates, passages, strict=True):
        if passage is None:
            continue
        rejected = fit(passage.text, tokens.count_tokens(chosen), tokens, r["category"] == "repositories")
        if rejected and rejected != chosen:
            out.append(preference_row(r, chosen, rejected, "other_author") | {"rejected_author": passage.author})
    return out


def pairs_report(pairs: list[Row], candidates: int, tokens: Any) -> dict[str, Any]:
    """What each kind of pair adds: counts, splits, other authors, mean token lengths of both sides."""
    report: dict[str, Any] = {"candidates": candidates, "kinds": {}}
    for kind in ("model", "other_author"):
        mine = [p for p in pairs if p["rejected_kind"] == kind]
        if not mine:
            report["kinds"][kind] = {"pairs": 0}
            continue
        report["kinds"][kind] = {
            "pairs": len(mine),
            "splits": dict(Counter(p["split"] for p in mine)),
            "chosen_tokens_mean": round(sum(tokens.count_tokens(p["chosen"]) for p in mine) / len(mine), 1),
            "rejected_tokens_mean": round(sum(tokens.count_tokens(p["rejected"]) for p in mine) / len(mine), 1),
        }
        if kind == "other_author":
            report["kinds"][kind]["authors"] = dict(Counter(p["rejected_author"] for p in mine))
    return {"pairs": report}
