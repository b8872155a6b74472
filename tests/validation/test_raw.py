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
