"""Query expansion: n alternative phrasings of the question, written by the LLM.

Off by default (TWIN_RAG_EXPANSIONS=0): a 135M model writes poor paraphrases, and the benchmark
measures whether they help. A failing LLM never fails the request: the original query is kept.
"""

from __future__ import annotations

import logging
import re

from twin_core.llm.base import LLMBackend

log = logging.getLogger(__name__)
_NUMBERING = re.compile(r"^\s*(?:[-*•]|\d+[.)])\s*")


def parse_alternatives(text: str, query: str, n: int) -> list[str]:
    seen = {query.strip().casefold()}
    out: list[str] = []
    for line in text.splitlines():
        alt = _NUMBERING.sub("", line).strip().strip('"').strip()
        if len(alt) < 8 or alt.casefold() in seen:
            continue
        seen.add(alt.casefold())
        out.append(alt)
        if len(out) == n:
            break
    return out


def expand_query(llm: LLMBackend, query: str, n: int, *, max_new_tokens: int = 96) -> list[str]:
    """Up to ``n`` alternative queries (the original is not included)."""
    if n <= 0:
        return []
    messages = [
        {
            "role": "system",
            "content": "You rewrite search queries. Reply only with the rewritten queries, one per line.",
        },
        {"role": "user", "content": f"Write {n} different ways to ask this question:\n{query}"},
    ]
    try:
        reply = llm.chat(messages, max_new_tokens=max_new_tokens).text
    except Exception as exc:
        log.warning("query expansion failed (%s): using the original query only", exc)
        return []
    return parse_alternatives(reply, query, n)
