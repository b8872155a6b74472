"""A crawled document stays pending (every crawl reports it created or updated) until `twin validate raw` has
seen it: a crawl whose result was lost (a killed pod, an Airflow XCom push that failed) and whose retry finds
the document stored must not report it "unchanged", or `check_changes` skips validation and features for good.
"""

from __future__ import annotations

from typing import Any

import pytest

from twin_core.domain.documents import ArticleDocument, Category
from twin_core.etl.runner import run_crawl
from twin_core.stores.artifacts import ArtifactStore
from twin_core.stores.warehouse import open_warehouse
from twin_core.validation import raw as validation

AUTHOR = "Ada Quillfeather"
AGAIN = "still awaiting validation since an earlier crawl, so reported again: created=1"
TEXT = (
    "Idempotency means that running the same job twice gives the same result as running it once, "
    "and that is the property every data pipeline should have before it is scheduled."
)


def _outcome(settings: Any, link: str) -> tuple[str, dict[str, int], list[str]]:
    [result] = run_crawl(settings, AUTHOR, [link]).links
    return result.status, result.documents, result.notes


def _pending(settings: Any) -> dict[str, list[str]]:
    warehouse = open_warehouse(settings)
    return {c.value: sorted(warehouse.pending_documents(c)) for c in Category if warehouse.pending_documents(c)}


CREATED = {"created": 1, "updated": 0, "unchanged": 0}
UNCHANGED = {"created": 0, "updated": 0, "unchanged": 1}


def test_a_recrawl_before_validation_reports_the_document_again_and_validation_settles_it(
    settings: Any, make_repo: Any
) -> None:
    link = make_repo().as_uri()
    assert _outcome(settings, link) == ("succeeded", CREATED, [])
    # the crawl task's result (XCom) was lost: its retry still reports the document created, and says why
    assert _outcome(settings, link) == ("succeeded", CREATED, [AGAIN])
    [doc] = open_warehouse(settings).find(Category.REPOSITORIES)
    assert _pending(settings) == {"repositories": [doc.id]}

    summary = validation.validate_raw(settings)
    assert (summary.get("status", "ok"), summary["documents"], summary["failed"]) == ("ok", 1, 0)
    assert _pending(settings) == {}
    assert _outcome(settings, link) == ("unchanged", UNCHANGED, [])  # validated: nothing new for downstream
    assert len(open_warehouse(settings).find(Category.REPOSITORIES)) == 1


def test_a_validation_killed_before_its_last_write_leaves_the_documents_pending(
    settings: Any, make_repo: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Killed as it stores its summary (its quarantine flags are written by then): it settles nothing, so
    the next crawl reports the document again and validation runs again."""
    link = make_repo().as_uri()
    run_crawl(settings, AUTHOR, [link])
    real = ArtifactStore.put_json

    def killed_at_the_summary(self: ArtifactStore, key: str, obj: Any) -> str:
        if key.endswith("/summary.json"):
            raise KeyboardInterrupt("killed")
        return real(self, key, obj)

    monkeypatch.setattr(ArtifactStore, "put_json", killed_at_the_summary)
    with pytest.raises(KeyboardInterrupt):
        validation.validate_raw(settings)
    monkeypatch.setattr(ArtifactStore, "put_json", real)
    [doc] = open_warehouse(settings).find(Category.REPOSITORIES)
    assert _pending(settings) == {"repositories": [doc.id]}
    assert _outcome(settings, link) == ("succeeded", CREATED, [AGAIN])

    assert validation.validate_raw(settings)["documents"] == 1
    assert _outcome(settings, link) == ("unchanged", UNCHANGED, [])


def test_a_failed_validation_settles_nothing_and_a_passed_one_settles_quarantined_documents_too(
    settings: Any, warehouse: Any
) -> None:
    """A validation above the failure ratio fails the step: its documents stay pending, so the next crawl
    triggers validation again. One that passes settles every pending document it read, quarantined or not."""
    user, _ = warehouse.get_or_create_user(AUTHOR)
    fields = {"platform": "blog", "author_id": user.id, "author_full_name": user.full_name}
    good = ArticleDocument(link="https://ada.dev/good", content={"Title": "T", "Content": TEXT}, **fields)
    short = ArticleDocument(link="https://ada.dev/short", content={"Title": "T", "Content": "Too short."}, **fields)
    for doc in (good, short):
        warehouse.upsert_document(doc, pending=True)  # as a crawl stores them
    pending = {"articles": sorted([good.id, short.id])}

    failed = validation.validate_raw(settings, max_failure_ratio=0.0)
    assert (failed["status"], failed["failed"]) == ("failed", 1)
    assert _pending(settings) == pending

    passed = validation.validate_raw(settings, max_failure_ratio=0.5)
    assert (passed.get("status", "ok"), passed["failed"]) == ("ok", 1)
    assert warehouse.get_document(Category.ARTICLES, short.id).quarantined
    assert _pending(settings) == {}


def test_validation_settles_only_what_it_read_a_concurrent_crawl_stays_pending(
    settings: Any, warehouse: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A crawl that writes while validation runs, after validation read the category: the document it changed
    and the one it created are not the ones validated, so both stay pending; the unchanged one is settled."""
    user, _ = warehouse.get_or_create_user(AUTHOR)
    fields = {"platform": "blog", "author_id": user.id, "author_full_name": user.full_name}

    def article(link: str, text: str) -> ArticleDocument:
        return ArticleDocument(link=link, content={"Title": "T", "Content": text}, **fields)

    kept, changed = article("https://ada.dev/a", TEXT), article("https://ada.dev/b", TEXT + " B.")
    new = article("https://ada.dev/c", TEXT + " C.")
    for doc in (kept, changed):
        warehouse.upsert_document(doc, pending=True)
    real_frame = validation.category_frame

    def frame_then_crawl(wh: Any, category: Category) -> Any:
        frame = real_frame(wh, category)
        if category is Category.ARTICLES:  # the concurrent crawl, through a connection of its own
            crawl = open_warehouse(settings)
            assert crawl.upsert_document(article(changed.link, TEXT + " B, changed."), pending=True) == "created"
            assert crawl.upsert_document(new, pending=True) == "created"
        return frame

    monkeypatch.setattr(validation, "category_frame", frame_then_crawl)
    summary = validation.validate_raw(settings)
    assert (summary.get("status", "ok"), summary["documents"]) == ("ok", 2)
    assert _pending(settings) == {"articles": sorted([changed.id, new.id])}
    monkeypatch.setattr(validation, "category_frame", real_frame)
    assert validation.validate_raw(settings)["documents"] == 3
    assert _pending(settings) == {}


def test_a_pending_document_the_validation_read_missed_stays_pending(
    settings: Any, warehouse: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Validation reads a category page by page: a concurrent delete shifts the pages and one document is not
    read. It was pending when validation looked at the pending list, so it was settled without being validated."""
    user, _ = warehouse.get_or_create_user(AUTHOR)
    fields = {"platform": "blog", "author_id": user.id, "author_full_name": user.full_name}
    docs = [
        ArticleDocument(link=f"https://ada.dev/{n}", content={"Title": "T", "Content": f"{TEXT} {n}."}, **fields)
        for n in ("a", "b")
    ]
    for doc in docs:
        warehouse.upsert_document(doc, pending=True)
    real_frame = validation.category_frame

    def frame_missing_one(wh: Any, category: Category) -> Any:
        frame = real_frame(wh, category)
        return frame[frame["id"] != docs[1].id].reset_index(drop=True) if category is Category.ARTICLES else frame

    monkeypatch.setattr(validation, "category_frame", frame_missing_one)
    assert validation.validate_raw(settings)["documents"] == 1
    assert _pending(settings) == {"articles": [docs[1].id]}


def test_a_changed_document_is_not_said_to_be_reported_again_and_an_import_keeps_it_pending(
    settings: Any, warehouse: Any
) -> None:
    """The "reported again" note is for the same content only: new content is news of its own. An import that
    replaces a crawled document no validation has seen wrote it without its pending mark, so the next crawl
    said "unchanged" and it was never validated."""
    from twin_core.etl.runner import _Author, _store

    user, _ = warehouse.get_or_create_user(AUTHOR)
    fields = {"platform": "blog", "author_id": user.id, "author_full_name": user.full_name}

    def article(text: str) -> ArticleDocument:
        return ArticleDocument(link="https://ada.dev/a", content={"Title": "T", "Content": text}, **fields)

    author = _Author(warehouse, AUTHOR)
    assert _store(author, [article(TEXT)]) == ({"created": 1, "updated": 0, "unchanged": 0}, [])
    assert _store(author, [article(TEXT + " More.")]) == ({"created": 1, "updated": 0, "unchanged": 0}, [])
    assert _store(author, [article(TEXT + " More.")]) == ({"created": 1, "updated": 0, "unchanged": 0}, ["created"])
    warehouse.upsert_document(article(TEXT + " Imported."))  # `twin warehouse import`: no pending mark of its own
    assert _pending(settings) == {"articles": [article(TEXT).id]}
