"""Great Expectations validation of raw documents: suites catch bad documents and quarantine them."""

from __future__ import annotations

import pytest

from twin_core.domain.documents import ArticleDocument, Category, PostDocument

pytestmark = pytest.mark.slow
GOOD_TEXT = (
    "Idempotency means that running the same job twice gives the same result as running it once, "
    "and that is the property every data pipeline should have before it is scheduled."
)


def _article(user, link: str, text: str, **kw) -> ArticleDocument:
    fields = {"platform": "blog", "author_id": user.id, "author_full_name": user.full_name, **kw}
    return ArticleDocument(link=link, content={"Title": "T", "Content": text, "language": ""}, **fields)


@pytest.fixture
def planted(warehouse):
    """Good documents plus one bad document per rule."""
    user, _ = warehouse.get_or_create_user("Ada Quillfeather")
    good = [_article(user, f"https://ada.dev/good-{i}", GOOD_TEXT + f" Part {i}.") for i in range(6)]
    good.append(
        PostDocument(
            link="https://www.linkedin.com/feed/update/urn:li:activity:1/",
            platform="linkedin",
            author_id=user.id,
            author_full_name=user.full_name,
            content={"Content": GOOD_TEXT},
        )
    )
    bad = {
        "challenge": _article(user, "https://medium.com/@ada/cf", "Just a moment... " + GOOD_TEXT),
        "short": _article(user, "https://ada.dev/short", "Too short."),
        "unknown author": _article(user, "https://ada.dev/ghost", GOOD_TEXT, author_id="someone-else"),
        "platform": _article(user, "https://ada.dev/tiktok", GOOD_TEXT, platform="tiktok"),
        "language": _article(user, "https://ada.dev/noise", "zxq vbn qwp " * 30),
        "login wall": PostDocument(
            link="https://www.linkedin.com/feed/update/urn:li:activity:2/",
            platform="linkedin",
            author_id=user.id,
            author_full_name=user.full_name,
            content={"Content": "Sign in to view more content. Join LinkedIn to see " + GOOD_TEXT},
        ),
    }
    for doc in [*good, *bad.values()]:
        warehouse.upsert_document(doc)
    return good, bad


def test_suites_quarantine_the_bad_documents(settings, warehouse, planted):
    from twin_core.stores.artifacts import open_artifact_store
    from twin_core.validation.raw import validate_raw

    good, bad = planted
    result = validate_raw(settings, max_failure_ratio=0.5)
    assert result.get("status", "ok") == "ok"
    assert result["documents"] == len(good) + len(bad)
    assert result["failed"] == len(bad)
    reasons = {q["link"]: q["reasons"] for q in result["quarantined"]}
    assert set(reasons) == {d.link for d in bad.values()}
    assert reasons[bad["challenge"].link] == ["challenge or login-wall text"]
    assert reasons[bad["login wall"].link] == ["challenge or login-wall text"]
    assert any("text length" in r for r in reasons[bad["short"].link])
    assert reasons[bad["unknown author"].link] == ["author unknown"]
    assert reasons[bad["platform"].link] == ["platform unknown"]
    assert reasons[bad["language"].link] == ["language not detected"]

    # kept, flagged, and excluded downstream
    assert warehouse.count(Category.ARTICLES, {"quarantined": True}) == 5
    assert {d.link for d in warehouse.find(Category.ARTICLES)} == {
        d.link for d in good if d.category.value == "articles"
    }
    kept = warehouse.get_document(Category.ARTICLES, bad["short"].id)
    assert kept.quarantined
    assert kept.quarantine_reasons

    store = open_artifact_store(settings)
    keys = store.list(f"validation/raw/{result['run_id']}")
    assert f"validation/raw/{result['run_id']}/data_docs/index.html" in keys
    assert any("/data_docs/validations/" in k and k.endswith(".html") for k in keys)
    assert store.get_json(f"validation/raw/{result['run_id']}/summary.json")["failed"] == len(bad)

    # re-run: same verdicts, nothing rewritten; a fixed document is released
    again = validate_raw(settings, max_failure_ratio=0.5)
    assert again["quarantined"] == []
    assert again["released"] == []
    assert again["failed"] == len(bad)
    user = warehouse.find_user("Ada Quillfeather")
    warehouse.upsert_document(_article(user, bad["short"].link, GOOD_TEXT))
    fixed = validate_raw(settings, max_failure_ratio=0.5)
    assert fixed["released"] == []
    assert fixed["failed"] == len(bad) - 1  # new content resets the flag itself
    assert not warehouse.get_document(Category.ARTICLES, bad["short"].id).quarantined


def test_step_fails_above_the_failure_ratio(settings, planted):
    from twin_core.validation.raw import validate_raw

    result = validate_raw(settings, max_failure_ratio=0.1)
    assert result["status"] == "failed"
    assert "ratio" in result["error"]


def test_cli_writes_data_docs_and_quarantines(twin, warehouse, settings, planted):
    run = twin("validate", "raw", "--max-failure-ratio", "0.5")
    assert run.returncode == 0, run.stderr[-2000:]
    assert run.result["status"] == "ok"
    assert len(run.result["quarantined"]) == 6
    assert run.result["data_docs"].endswith("data_docs/index.html")
    from pathlib import Path

    assert Path(run.result["data_docs"]).is_file()
    run = twin("validate", "raw", "--max-failure-ratio", "0.1")
    assert run.returncode == 3
    assert run.result["status"] == "failed"


def test_empty_warehouse_is_valid(settings):
    from twin_core.validation.raw import validate_raw

    result = validate_raw(settings)
    assert result["documents"] == 0
    assert result.get("status", "ok") == "ok"
    assert result["data_docs"] is None


def test_failing_gate_states_n_and_interval_and_logs_why(settings, planted, caplog):
    from twin_core.validation.raw import validate_raw

    good, bad = planted
    n = len(good) + len(bad)
    with caplog.at_level("INFO", logger="twin_core.validation.raw"):
        result = validate_raw(settings, max_failure_ratio=0.1)
    gate = result["gate"]
    assert (gate["decision"], gate["n"], gate["failed"], gate["max_failure_ratio"]) == ("fail", n, len(bad), 0.1)
    low, high = gate["ci95"]
    assert low < len(bad) / n < high
    assert result["error"] == gate["reason"]
    assert f"{len(bad)}/{n} documents failed validation" in gate["reason"] and "95% CI" in gate["reason"]
    errors = [r.getMessage() for r in caplog.records if r.levelname == "ERROR"]
    assert errors and gate["reason"] in errors[0] and result["data_docs"] in errors[0]  # the task log says why
    quarantined = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert any(bad["short"].link in m and "text length" in m for m in quarantined)


def test_nothing_to_validate_holds(settings):
    """No document: the gate decides nothing (no ratio of 0 claimed, no category called a success)."""
    from twin_core.validation.raw import validate_raw

    result = validate_raw(settings, max_failure_ratio=0.0)
    assert result.get("status", "ok") == "ok"
    assert result["failure_ratio"] is None
    assert result["gate"] == {
        "sample": "documents",
        "n": 0,
        "failed": 0,
        "failure_ratio": None,
        "ci95": None,
        "max_failure_ratio": 0.0,
        "decision": "hold",
        "reason": "no documents to validate",
        "known_failures": 0,
    }
    assert {c["success"] for c in result["categories"].values()} == {None}


def test_the_gate_judges_what_the_crawls_brought(settings, warehouse, planted):
    """Documents quarantined by earlier validations no longer fail every later one: the gate judges the pending
    documents (new or changed since the last validation), and settles them when they pass."""
    from twin_core.validation.raw import validate_raw

    assert validate_raw(settings, max_failure_ratio=0.2)["status"] == "failed"  # 6 of 13 are bad
    user = warehouse.find_user("Ada Quillfeather")
    fresh = [_article(user, f"https://ada.dev/fresh-{i}", GOOD_TEXT + f" Fresh {i}.") for i in range(3)]
    for doc in fresh:
        warehouse.upsert_document(doc, pending=True)  # as a crawl stores them
    result = validate_raw(settings, max_failure_ratio=0.2)
    assert result.get("status", "ok") == "ok", result.get("error")
    gate = result["gate"]
    assert (gate["sample"], gate["n"], gate["failed"], gate["decision"]) == ("new or changed documents", 3, 0, "pass")
    assert (result["documents"], result["failed"]) == (16, 6)  # the warehouse as a whole, for the record
    assert all(not warehouse.pending_documents(c) for c in Category)


def test_a_broken_crawl_is_not_diluted_by_the_warehouse(settings, warehouse):
    from twin_core.validation.raw import validate_raw

    user, _ = warehouse.get_or_create_user("Ada Quillfeather")
    for i in range(20):
        warehouse.upsert_document(_article(user, f"https://ada.dev/old-{i}", GOOD_TEXT + f" Old {i}."))
    assert validate_raw(settings)["failed"] == 0
    warehouse.upsert_document(_article(user, "https://ada.dev/new-0", "Just a moment... " + GOOD_TEXT), pending=True)
    warehouse.upsert_document(
        _article(user, "https://ada.dev/new-1", "Verify you are human. " + GOOD_TEXT), pending=True
    )
    result = validate_raw(settings)  # 2 of 22 documents fail, both of the 2 just crawled
    assert result["status"] == "failed"
    assert result["error"].startswith("2/2 new or changed documents failed validation")
    assert len([c for c in Category if warehouse.pending_documents(c)]) == 1  # not settled: validation reruns


def test_a_failure_reported_once_does_not_fail_every_later_validation(settings, warehouse):
    """A document crawled alone and quarantined fails the gate (1 of 1) and stays pending; the next validation
    (the next crawl reports it again) knows that failure: it is left out of the new documents, so the gate
    judges every document and settles it, where it failed again (1 of 1) on every later crawl."""
    from twin_core.validation.raw import validate_raw

    user, _ = warehouse.get_or_create_user("Ada Quillfeather")
    for i in range(9):
        warehouse.upsert_document(_article(user, f"https://ada.dev/old-{i}", GOOD_TEXT + f" Old {i}."))
    assert validate_raw(settings)["gate"]["decision"] == "pass"
    warehouse.upsert_document(_article(user, "https://ada.dev/wall", "Just a moment... " + GOOD_TEXT), pending=True)
    first = validate_raw(settings)
    assert (first["status"], first["gate"]["n"], first["gate"]["known_failures"]) == ("failed", 1, 0)
    again = validate_raw(settings)
    gate = again["gate"]
    assert again.get("status", "ok") == "ok", again.get("error")
    # left out of the new documents, none is left: every document is judged, 1 of 10 failing
    assert (gate["sample"], gate["n"], gate["failed"], gate["known_failures"]) == ("documents", 10, 1, 1)
    assert all(not warehouse.pending_documents(c) for c in Category)  # settled: a re-crawl finds it unchanged
    assert [d["link"] for d in again["quarantined"]] == [] and again["quarantined_total"] == 1  # still quarantined
