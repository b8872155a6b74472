"""Re-runs of a crawl: a killed or failed run's stored documents are reported again, and every link into one
GitHub repository is one document."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from twin_core.domain.documents import Category
from twin_core.errors import BackendUnavailable
from twin_core.etl.crawlers.github import GitHubCrawler
from twin_core.etl.runner import dedupe, run_crawl
from twin_core.settings import updated
from twin_core.stores.warehouse import Warehouse, open_warehouse

AUTHOR = "Ada Quillfeather"


def _docs(settings: Any) -> list:
    return open_warehouse(settings).find(Category.REPOSITORIES)


def _validate(settings: Any) -> None:
    """`twin validate raw`, the step after the crawls: it settles the crawled documents it has seen."""
    from twin_core.validation.raw import validate_raw

    assert validate_raw(settings).get("status", "ok") == "ok"


def _dies_after_storing(monkeypatch: pytest.MonkeyPatch, error: BaseException) -> None:
    """The first document write stores the document, then the run dies (a SIGKILL's stand-in) or the
    warehouse drops the connection before answering (a temporary failure: the link is retried)."""
    real = Warehouse.upsert_document

    def upsert_then_die(self: Warehouse, *args: Any, **kwargs: Any) -> Any:
        real(self, *args, **kwargs)
        monkeypatch.setattr(Warehouse, "upsert_document", real)
        raise error

    monkeypatch.setattr(Warehouse, "upsert_document", upsert_then_die)


@pytest.mark.parametrize("error", [KeyboardInterrupt("killed"), BackendUnavailable("warehouse connection reset")])
def test_a_crawl_interrupted_after_storing_reports_its_documents_again(
    settings: Any, make_repo: Any, monkeypatch: pytest.MonkeyPatch, error: BaseException
) -> None:
    link = make_repo().as_uri()
    _dies_after_storing(monkeypatch, error)
    if isinstance(error, KeyboardInterrupt):
        with pytest.raises(KeyboardInterrupt):
            run_crawl(settings, AUTHOR, [link])
    else:
        assert run_crawl(settings, AUTHOR, [link]).links[0].reason == "unavailable"
    assert len(_docs(settings)) == 1  # stored, but no finished run reported it: downstream never saw it

    retry = run_crawl(settings, AUTHOR, [link])
    # created, not "unchanged": the DAG validates (and featurizes) only when a crawl created or updated
    assert retry.totals()["documents_created"] == 1
    assert retry.links[0].status == "succeeded"
    _validate(settings)
    again = run_crawl(settings, AUTHOR, [link])
    assert again.totals()["documents_unchanged"] == 1
    assert again.links[0].status == "unchanged"
    assert len(_docs(settings)) == 1


def test_a_killed_recrawl_of_a_changed_repository_reports_it_updated(
    settings: Any, make_repo: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    repo = make_repo()
    link = repo.as_uri()
    assert run_crawl(settings, AUTHOR, [link]).totals()["documents_created"] == 1
    _validate(settings)
    (repo / "NEW.md").write_text("A new file, so the repository changed.\n")
    subprocess.run(["git", "add", "-A"], cwd=repo, check=True, capture_output=True)
    subprocess.run(
        ["git", "-c", "user.name=T", "-c", "user.email=t@example.com", "commit", "-q", "-m", "change"],
        cwd=repo,
        check=True,
        capture_output=True,
    )
    _dies_after_storing(monkeypatch, KeyboardInterrupt("killed"))
    with pytest.raises(KeyboardInterrupt):
        run_crawl(settings, AUTHOR, [link])
    [doc] = _docs(settings)
    assert "NEW.md" in doc.content

    retry = run_crawl(settings, AUTHOR, [link])
    assert retry.totals()["documents_updated"] == 1
    _validate(settings)
    assert run_crawl(settings, AUTHOR, [link]).totals()["documents_unchanged"] == 1
    assert len(_docs(settings)) == 1


def test_links_into_one_github_repository_are_one_link() -> None:
    variants = [
        "https://github.com/ada/tiny",
        "https://github.com/ada/tiny/",
        "https://github.com/ada/tiny.git",
        "https://www.github.com/ada/tiny/tree/main/src",
        "http://github.com/ada/tiny?tab=readme#top",
    ]
    unique, duplicates = dedupe([*variants, "https://github.com/ada/other", "https://gitlab.com/ada/tiny.git"])
    assert unique == ["https://github.com/ada/tiny", "https://github.com/ada/other", "https://gitlab.com/ada/tiny.git"]
    assert duplicates == variants[1:]


def test_one_github_repository_crawled_under_several_links_is_one_document(
    settings: Any, make_repo: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    source = make_repo()

    def clone_local(self: GitHubCrawler, url: str, dest: Path, settings: Any) -> None:
        assert url == "https://github.com/ada/tiny.git"
        shutil.copytree(source, dest)  # offline: the "remote" is a local repository

    monkeypatch.setattr(GitHubCrawler, "_clone", clone_local)
    settings = updated(settings, crawl_allow_hosts="github.com,www.github.com")  # no DNS offline
    first = run_crawl(settings, AUTHOR, ["https://github.com/ada/tiny", "https://github.com/ada/tiny.git"])
    assert first.duplicates == ["https://github.com/ada/tiny.git"]
    _validate(settings)
    second = run_crawl(settings, AUTHOR, ["https://github.com/ada/tiny/tree/main", "https://github.com/ada/tiny/"])
    assert second.totals()["documents_unchanged"] == 1
    [doc] = _docs(settings)
    assert doc.link == "https://github.com/ada/tiny"


def test_a_repository_stored_under_an_older_link_form_is_replaced_not_duplicated(
    settings: Any, make_repo: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A warehouse from before links into one repository were one document holds it under `…/tiny.git`: the
    next crawl stores `https://github.com/ada/tiny` and removes the old document (features drop its chunks),
    saying so in the link's notes; Oskar's document under the same link form is not his author's to replace."""
    from twin_core.domain.ids import document_id

    source = make_repo()
    monkeypatch.setattr(GitHubCrawler, "_clone", lambda self, url, dest, settings: shutil.copytree(source, dest))
    settings = updated(settings, crawl_allow_hosts="github.com,www.github.com")  # no DNS offline
    run_crawl(settings, AUTHOR, ["https://github.com/ada/tiny"])
    warehouse = open_warehouse(settings)
    [doc] = warehouse.find(Category.REPOSITORIES)
    old = doc.model_copy(
        update={"id": document_id("https://github.com/ada/tiny.git"), "link": "https://github.com/ada/tiny.git"}
    )
    other = doc.model_copy(update={"id": "oskar-tiny", "link": "https://github.com/ada/tiny/", "author_id": "oskar"})
    warehouse.delete_document(Category.REPOSITORIES, doc.id)
    warehouse.upsert_document(old)
    warehouse.upsert_document(other)
    report = run_crawl(settings, AUTHOR, ["https://github.com/ada/tiny.git"])
    assert report.links[0].notes[-1] == "replaced https://github.com/ada/tiny.git (the same repository)"
    links = sorted((d.author_id == doc.author_id, d.link) for d in warehouse.find(Category.REPOSITORIES))
    assert links == [(False, "https://github.com/ada/tiny/"), (True, "https://github.com/ada/tiny")]
