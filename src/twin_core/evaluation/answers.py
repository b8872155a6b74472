"""Batched answers: a local model's rows through the continuous engine, ``batch_size`` rows at a time
(``llm.batch_jobs.generate_all``: greedy rows give the same text as one at a time, and the prompt start
they share is prefilled once); ``generate_batch`` in batches for another batching backend; one ``chat``
call per row for a model without batching (an endpoint)."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import Any

from twin_core.progress import ProgressFactory, silent

log = logging.getLogger(__name__)
Messages = list[dict[str, str]]


def generate(
    llm: Any,
    prompts: Sequence[Messages],
    max_new_tokens: int,
    *,
    batch_size: int = 8,
    progress: ProgressFactory = silent,
    desc: str = "answers",
    timeout_s: float | None = None,
) -> list[str | BaseException]:
    """One text (or the exception that row raised) per prompt, in order; a failed row never fails the others."""
    if not hasattr(llm, "generate_batch") or batch_size <= 1:
        return [_one(llm, p, max_new_tokens, timeout_s) for p in progress(list(prompts), desc=desc, unit="row")]
    from twin_core.llm.local import GenRequest, LocalLLM

    if isinstance(llm, LocalLLM):
        from twin_core.llm.batch_jobs import generate_all

        reqs = [GenRequest(p, max_new_tokens, 0.0) for p in prompts]
        results = generate_all(llm, reqs, max_batch=batch_size, timeout_s=timeout_s, progress=progress, desc=desc)
        return [r if isinstance(r, BaseException) else r.text for r in results]
    out: list[str | BaseException] = []
    starts = range(0, len(prompts), batch_size)
    for start in progress(list(starts), desc=f"{desc} (batches of {batch_size})", unit="batch"):
        reqs = [GenRequest(p, max_new_tokens, 0.0) for p in prompts[start : start + batch_size]]
        for res in llm.generate_batch(reqs, timeout_s=timeout_s):
            out.append(res if isinstance(res, BaseException) else res.text)
    return out


def _one(llm: Any, prompt: Messages, max_new_tokens: int, timeout_s: float | None) -> str | BaseException:
    try:
        return llm.chat(prompt, max_new_tokens=max_new_tokens, temperature=0.0, timeout_s=timeout_s).text
    except Exception as exc:  # noqa: BLE001 - the caller records a failed row as missing
        return exc


def texts_or_none(results: list[str | BaseException], label: str, ids: Sequence[Any]) -> list[str | None]:
    out: list[str | None] = []
    for res, row_id in zip(results, ids, strict=True):
        if isinstance(res, BaseException):
            log.warning("%s: generation failed on row %s: %s", label, row_id, res)
            out.append(None)
        else:
            out.append(res)
    return out


Generate = Callable[..., list[str | BaseException]]
