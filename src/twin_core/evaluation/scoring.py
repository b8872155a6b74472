"""Per-row scores of one model's answers: perplexity of the author's text, topic similarity, ROUGE-L,
stylometric distance and attribution, groundedness, the judge. ``None`` = not measured for that row."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from twin_core.evaluation import metrics as m
from twin_core.evaluation.attribution import Attributor, calibration
from twin_core.evaluation.stylometry import style_distance


def row_perplexities(llm: Any, rows: list[dict[str, Any]], author: str, max_length: int) -> list[float | None]:
    """Perplexity of each held-out answer given the served prompt (None for a remote model: no logits)."""
    from twin_core.llm.perplexity import perplexities
    from twin_core.llm.rows import prompt_and_answer_text, sft_example

    if not hasattr(llm, "model"):
        return [None] * len(rows)
    pairs = [prompt_and_answer_text(llm.tokenizer, sft_example(dict(row), author)) for row in rows]
    return perplexities(llm.model, llm.tokenizer, pairs, max_length=max_length)  # one pass over the shared start


def style_distances(answers: list[str | None], references: list[str]) -> list[float | None]:
    """Burrows' Delta of each answer from the author's held-out text (None: no answer or no words)."""
    out: list[float | None] = []
    for answer in answers:
        try:
            out.append(style_distance([answer], references) if answer else None)
        except ValueError:
            out.append(None)
    return out


def attributions(answers: list[str | None], author_slug: str, attributor: Attributor | None) -> list[float | None]:
    """1.0 when the answer is attributed to the author, 0.0 to another; None with a single author."""
    if attributor is None:
        return [None] * len(answers)
    found = attributor.predict([a or "" for a in answers])
    return [None if not a or not who else float(who == author_slug) for a, who in zip(answers, found, strict=True)]


def attribution_calibration(
    answers: list[str | None], attributor: Attributor, held_out: dict[str, list[str]]
) -> dict[str, Any] | None:
    """The attribution's accuracy on the authors' held-out prose cut to the answers' median length in
    words: the share a perfect twin would get (None without answers)."""
    lengths = sorted(len(a.split()) for a in answers if a and a.split())
    if not lengths:
        return None
    return calibration(attributor, held_out, lengths[len(lengths) // 2])


def score_answers(
    answers: list[str | None],
    references: list[str],
    hits: list[list[dict[str, Any]] | None],
    embed: Callable[[list[str]], Any] | None,
    author_slug: str,
    attributor: Attributor | None,
) -> dict[str, list[float | None]]:
    """Every per-row metric that needs only the answers (perplexity and the judge come separately)."""
    return {
        "topic_similarity": m.topic_similarity(answers, references, embed) if embed else [None] * len(answers),
        "rouge_l": m.rouge_l(answers, references),
        "style_distance": style_distances(answers, references),
        "attribution": attributions(answers, author_slug, attributor),
        "groundedness": [
            m.groundedness(a, [h.get("text", "") for h in (hit or [])]) if hit else None
            for a, hit in zip(answers, hits, strict=True)
        ],
    }


def pooled_style(answers: list[str | None], references: list[str]) -> float | None:
    """Burrows' Delta of all the answers together from the author's held-out text."""
    try:
        return style_distance([a for a in answers if a], references)
    except ValueError:
        return None
