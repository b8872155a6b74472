import subprocess
import sys
from pathlib import Path

import pytest
from pymongo.errors import DuplicateKeyError

from twin_core.domain import ArticleDocument, Category, PostDocument
from twin_core.errors import BackendUnavailable, ConfigError
from twin_core.settings import load_settings
from twin_core.stores.mongo import open_database
from twin_core.stores.warehouse import Outcome, open_warehouse


def _post(warehouse, n: int, text: str = "hello") -> PostDocument:
    user, _ = warehouse.get_or_create_user("Ada Quillfeather")
    return PostDocument(
        link=f"https://www.linkedin.com/p/{n}",
        platform="linkedin",
        author_id=user.id,
        author_full_name=user.full_name,
        content={"Content": f"{text} {n}"},
    )


def test_upsert_created_unchanged_updated(warehouse) -> None:
    doc = _post(warehouse, 1)
    assert warehouse.upsert_document(doc) is Outcome.CREATED
    assert warehouse.upsert_document(_post(warehouse, 1)) is Outcome.UNCHANGED
    assert warehouse.upsert_document(_post(warehouse, 1, "changed")) is Outcome.UPDATED
    assert warehouse.count(Category.POSTS) == 1
    stored = warehouse.get_document(Category.POSTS, doc.id)
    assert stored.content == {"Content": "changed 1"}


def test_unique_index_on_link(warehouse) -> None:
    warehouse.upsert_document(_post(warehouse, 1))
    row = _post(warehouse, 1).to_mongo()
    row["_id"] = "another-id"
    with pytest.raises(DuplicateKeyError):  # the raw backend, on the thread that owns it
        warehouse._owner.run(lambda: warehouse._db["posts"].insert_one(row))


def test_embedded_warehouse_is_usable_from_any_thread(warehouse) -> None:
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(4) as pool:
        outcomes = list(pool.map(lambda n: warehouse.upsert_document(_post(warehouse, n)), range(8)))
    assert outcomes == [Outcome.CREATED] * 8
    assert warehouse.count(Category.POSTS) == 8


def test_content_hashes_and_documents_by_id(warehouse) -> None:
    docs = [_post(warehouse, n) for n in range(3)]
    warehouse.upsert_documents(docs)
    warehouse.set_quarantine(Category.POSTS, docs[0].id, ["too short"])
    live = warehouse.content_hashes()
    assert live == {d.id: (Category.POSTS, d.content_hash) for d in docs[1:]}
    assert set(warehouse.content_hashes(include_quarantined=True)) == {d.id for d in docs}
    assert warehouse.content_hashes(author_id="nobody") == {}
    got = warehouse.documents_by_id(Category.POSTS, [docs[2].id, "missing", docs[1].id])
    assert [d.id for d in got] == sorted([docs[1].id, docs[2].id])
    assert got[0].content_hash in {docs[1].content_hash, docs[2].content_hash}
    assert warehouse.documents_by_id(Category.ARTICLES, [docs[1].id]) == []


def test_get_or_create_user_is_idempotent(warehouse) -> None:
    a, created_a = warehouse.get_or_create_user("Ada Quillfeather")
    b, created_b = warehouse.get_or_create_user("ada  quillfeather")
    assert created_a
    assert not created_b
    assert a.id == b.id
    assert warehouse.find_user("ADA QUILLFEATHER").id == a.id
    assert len(warehouse.users()) == 1


def test_pagination_and_quarantine(warehouse) -> None:
    for n in range(7):
        warehouse.upsert_document(_post(warehouse, n))
    pages = [warehouse.find(Category.POSTS, skip=s, limit=3) for s in (0, 3, 6)]
    assert [len(p) for p in pages] == [3, 3, 1]
    ids = [d.id for p in pages for d in p]
    assert len(set(ids)) == 7
    assert ids == sorted(ids)
    victim = ids[0]
    warehouse.set_quarantine(Category.POSTS, victim, ["too short"])
    assert victim not in {d.id for d in warehouse.iter_documents(Category.POSTS, batch_size=2)}
    assert warehouse.count(Category.POSTS) == 7  # kept, never deleted
    assert warehouse.stats()["categories"]["posts"] == {"total": 7, "quarantined": 1}
    assert warehouse.delete_document(Category.POSTS, ids[1])
    assert warehouse.count(Category.POSTS) == 6


def test_data_persists_for_a_second_process(warehouse, settings) -> None:
    warehouse.upsert_document(_post(warehouse, 42))
    code = (
        "from twin_core.settings import get_settings;from twin_core.stores.warehouse import open_warehouse;"
        "print(open_warehouse(get_settings()).count(__import__('twin_core.domain').domain.Category.POSTS))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "1"


def test_unreachable_mongodb_fails_fast_naming_the_host(twin_home) -> None:
    s = load_settings(mongodb_uri="mongodb://user:pw@127.0.0.1:1/twin", mongodb_timeout_ms=300)
    with pytest.raises(BackendUnavailable) as err:
        open_database(s)
    assert "127.0.0.1:1" in str(err.value)
    assert "pw" not in str(err.value)


@pytest.mark.parametrize("kind", ["read-only filesystem", "parent is a file"])
def test_unwritable_home_is_a_config_error(tmp_path, kind: str) -> None:
    if kind == "parent is a file":
        blocker = tmp_path / "file"
        blocker.write_text("x")
        home = blocker / "twin"
    else:
        home = Path("/sys/twin-home")  # sysfs is mounted read-only, even for root
    with pytest.raises(ConfigError, match="TWIN_HOME"):
        open_warehouse(load_settings(home=home))


def test_article_category_binning(warehouse) -> None:
    user, _ = warehouse.get_or_create_user("Ada Quillfeather")
    art = ArticleDocument(
        link="https://medium.com/@ada/x",
        platform="medium",
        author_id=user.id,
        author_full_name=user.full_name,
        content={"Content": "x"},
    )
    warehouse.upsert_document(art)
    assert warehouse.find_by_link("https://medium.com/@ada/x").category is Category.ARTICLES
