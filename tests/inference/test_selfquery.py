"""Self-query: exact and fuzzy author matching, never creating users."""

from __future__ import annotations

from twin_core.domain.documents import UserDocument
from twin_core.inference.selfquery import match_in_query, match_name, self_query

USERS = [UserDocument.from_full_name("Ada Quillfeather"), UserDocument.from_full_name("Bob Li")]


def test_exact_full_name() -> None:
    m = match_in_query("What does Ada Quillfeather think about chunking?", USERS)
    assert m is not None
    assert m.user.full_name == "Ada Quillfeather"
    assert m.method == "exact"


def test_case_and_possessive() -> None:
    m = match_in_query("ada QUILLFEATHER's take on HNSW", USERS)
    assert m is not None
    assert m.user.full_name == "Ada Quillfeather"


def test_fuzzy_misspelling_and_last_name() -> None:
    m = match_in_query("what would Ada Quilfeather say", USERS)
    assert m is not None
    assert m.method == "fuzzy"
    m = match_in_query("How does Quillfeather chunk text?", USERS)
    assert m is not None
    assert m.user.full_name == "Ada Quillfeather"


def test_no_match_and_short_last_names() -> None:
    assert self_query("How should I size Kubernetes limits?", USERS) is None
    assert match_in_query("li ion batteries", USERS) is None  # too short to match alone


def test_match_name() -> None:
    assert match_name("  ada   quillfeather ", USERS).user.full_name == "Ada Quillfeather"
    assert match_name("Ada Quilfeather", USERS).user.full_name == "Ada Quillfeather"
    assert match_name("Carol Unknown", USERS) is None
