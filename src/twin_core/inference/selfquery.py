"""Self-query: which author is a query about? Exact and fuzzy name matching first, an LLM only if asked.

Matching reads the warehouse users and never creates one.
"""

from __future__ import annotations

import difflib
import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass

from twin_core.domain.documents import UserDocument
from twin_core.domain.ids import normalize_full_name
from twin_core.llm.base import LLMBackend

log = logging.getLogger(__name__)

FUZZY_FULL_NAME = 0.85  # similarity of a word window to the full name ("Ada Quilfeather")
FUZZY_LAST_NAME = 0.88  # similarity of one word to a distinctive last name ("Quillfeather's")
MIN_LAST_NAME_LEN = 5  # short last names ("Li") match too much prose to be used alone
_WORD = re.compile(r"[\w'’-]+", re.UNICODE)


@dataclass(frozen=True)
class AuthorMatch:
    user: UserDocument
    method: str  # exact | fuzzy | last_name | llm | named
    score: float


def _key(text: str) -> str:
    return normalize_full_name(text).casefold()


def _words(text: str) -> list[str]:
    return [re.sub(r"['’]s$", "", w) for w in _WORD.findall(text.casefold())]


def match_name(name: str, users: Sequence[UserDocument]) -> AuthorMatch | None:
    """A user for an explicitly given name: exact (case/whitespace-insensitive), then fuzzy."""
    key = _key(name)
    if not key:
        return None
    for user in users:
        if _key(user.full_name) == key:
            return AuthorMatch(user, "named", 1.0)
    best = None
    for user in users:
        score = difflib.SequenceMatcher(None, key, _key(user.full_name)).ratio()
        if score >= FUZZY_FULL_NAME and (best is None or score > best.score):
            best = AuthorMatch(user, "named", score)
    return best


def match_in_query(query: str, users: Sequence[UserDocument]) -> AuthorMatch | None:
    """The user a query mentions, if any: full name, then a fuzzy window, then a distinctive last name."""
    text = " ".join(_words(query))
    words = text.split()
    best: AuthorMatch | None = None
    for user in users:
        name_words = _words(user.full_name)
        name = " ".join(name_words)
        if not name:
            continue
        if re.search(rf"\b{re.escape(name)}\b", text):
            return AuthorMatch(user, "exact", 1.0)
        n = len(name_words)
        for i in range(max(len(words) - n + 1, 0)):
            score = difflib.SequenceMatcher(None, " ".join(words[i : i + n]), name).ratio()
            if score >= FUZZY_FULL_NAME and (best is None or score > best.score):
                best = AuthorMatch(user, "fuzzy", score)
        last = name_words[-1]
        if n > 1 and len(last) >= MIN_LAST_NAME_LEN:
            for word in words:
                score = difflib.SequenceMatcher(None, word, last).ratio()
                if score >= FUZZY_LAST_NAME and (best is None or score > best.score):
                    best = AuthorMatch(user, "last_name", score * 0.95)
    return best


def match_with_llm(query: str, users: Sequence[UserDocument], llm: LLMBackend) -> AuthorMatch | None:
    """Ask the LLM which of the known authors the query is about; its answer must match a known user."""
    names = ", ".join(u.full_name for u in users)
    messages = [
        {
            "role": "system",
            "content": "You extract the person a question is about. Reply with one name from the list, or NONE.",
        },
        {"role": "user", "content": f"Known people: {names}\nQuestion: {query}\nPerson:"},
    ]
    try:
        reply = llm.chat(messages, max_new_tokens=12).text.strip().splitlines()[0] if query.strip() else ""
    except Exception as exc:  # self-query is best effort: a failing LLM must not fail the request
        log.warning("self-query LLM failed: %s", exc)
        return None
    if not reply or reply.strip().upper().startswith("NONE"):
        return None
    found = match_name(reply, users) or match_in_query(reply, users)
    return AuthorMatch(found.user, "llm", found.score) if found else None


def self_query(query: str, users: Sequence[UserDocument], llm: LLMBackend | None = None) -> AuthorMatch | None:
    return match_in_query(query, users) or (match_with_llm(query, users, llm) if llm is not None else None)
