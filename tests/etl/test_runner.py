"""The crawl runner in process: the author is stored with the first document, never by a failed run."""

from __future__ import annotations

from support.ports import refused_port

from twin_core.domain.documents import Category, UserDocument
from twin_core.etl.runner import run_crawl
from twin_core.stores.warehouse import open_warehouse


def test_a_crawl_whose_links_all_fail_creates_no_author(crawl_settings, site):
    with refused_port() as port:
        links = [f"http://127.0.0.1:{port}/x", f"{site.base_url}/status/404"]
        report = run_crawl(crawl_settings, "Ada Quilfeather", links)
    assert [(r.status, r.reason) for r in report.links] == [("failed", "connection"), ("failed", "http_404")]
    assert open_warehouse(crawl_settings).users() == []  # a typo'd name leaves no phantom author


def test_the_author_is_stored_once_with_the_first_document(crawl_settings, site):
    links = [f"{site.base_url}/blog.html", f"{site.base_url}/status/404"]
    first = run_crawl(crawl_settings, "Ada Quillfeather", links)
    assert [r.status for r in first.links] == ["succeeded", "failed"]
    second = run_crawl(crawl_settings, "  ada   QUILLFEATHER ", links)  # the same author, spelled otherwise
    # no validation in between: the same document, reported created again (it still awaits validation)
    assert [(r.status, r.documents) for r in second.links] == [
        ("succeeded", {"created": 1, "updated": 0, "unchanged": 0}),
        ("failed", {}),
    ]
    warehouse = open_warehouse(crawl_settings)
    ada = UserDocument.from_full_name("Ada Quillfeather")
    assert [u.to_mongo() for u in warehouse.users()] == [ada.to_mongo()]  # stored once, as first spelled
    [doc] = warehouse.find(Category.ARTICLES)
    assert (doc.author_id, doc.author_full_name) == (ada.id, "Ada Quillfeather")
