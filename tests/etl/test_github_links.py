"""Which repository a git link clones, and which document it is: only github.com itself is rewritten to
``https://github.com/<owner>/<repo>`` (in lower case: GitHub ignores the case of both), a gist clones from
gist.github.com, and a host or path that merely contains "github.com" is not GitHub."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from twin_core.domain.documents import Category
from twin_core.domain.ids import document_id
from twin_core.etl.crawlers.github import GitHubCrawler, canonical_repo_link
from twin_core.etl.errors import CrawlError
from twin_core.etl.runner import dedupe, run_crawl
from twin_core.settings import updated
from twin_core.stores.warehouse import open_warehouse

AUTHOR = "Ada Quillfeather"
HOSTS = "github.com,www.github.com,gist.github.com,notgithub.com,git.example.org"  # no DNS offline


@pytest.mark.parametrize(
    ("link", "expected"),
    [
        ("https://gist.github.com/someone/abc123.git", ("https://gist.github.com/someone/abc123.git", "abc123")),
        ("https://gist.github.com/abc123.git", ("https://gist.github.com/abc123.git", "abc123")),
        ("https://notgithub.com/ada/tiny.git", ("https://notgithub.com/ada/tiny.git", "tiny")),
        ("https://git.example.org/github.com/tiny.git", ("https://git.example.org/github.com/tiny.git", "tiny")),
        ("https://github.com/Ada/Tiny/tree/main/src", ("https://github.com/Ada/Tiny.git", "Tiny")),
        ("https://www.github.com/ada/tiny.git", ("https://github.com/ada/tiny.git", "tiny")),
    ],
)
def test_clone_url_rewrites_github_com_only(settings: Any, link: str, expected: tuple[str, str]) -> None:
    assert GitHubCrawler().clone_url(link, updated(settings, crawl_allow_hosts=HOSTS)) == expected


@pytest.mark.parametrize("link", ["https://github.com/ada", "https://github.com/ada/.git"])
def test_a_github_link_without_a_repository_is_invalid(settings: Any, link: str) -> None:
    with pytest.raises(CrawlError) as err:
        GitHubCrawler().clone_url(link, updated(settings, crawl_allow_hosts=HOSTS))
    assert err.value.reason == "invalid_url"


def test_gists_and_look_alikes_keep_their_link() -> None:
    for link in ("https://gist.github.com/someone/abc123.git", "https://notgithub.com/Ada/Tiny.git"):
        assert canonical_repo_link(link) == link
        assert GitHubCrawler().matches(link, None)  # a .git URL: cloned, as given


def test_a_gist_is_cloned_from_gist_github_com(settings: Any, make_repo: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    source = make_repo()
    cloned: list[str] = []

    def clone_local(self: GitHubCrawler, url: str, dest: Path, settings: Any) -> None:
        cloned.append(url)
        shutil.copytree(source, dest)  # offline: the "remote" is a local repository

    monkeypatch.setattr(GitHubCrawler, "_clone", clone_local)
    link = "https://gist.github.com/someone/abc123.git"
    report = run_crawl(updated(settings, crawl_allow_hosts=HOSTS), AUTHOR, [link])
    assert (report.links[0].status, cloned) == ("succeeded", [link])
    [doc] = open_warehouse(settings).find(Category.REPOSITORIES)
    assert (doc.link, doc.name, doc.platform) == (link, "abc123", "git")


def test_a_bare_repository_under_a_folder_named_github_com_is_plain_git(settings: Any, make_repo: Any) -> None:
    """A local path that contains "github.com" is cloned from the path (really: no network here) and is no
    GitHub repository."""
    work = make_repo()
    bare = work.parent / "mirrors" / "github.com" / "tiny.git"
    bare.parent.mkdir(parents=True)
    subprocess.run(["git", "clone", "-q", "--bare", str(work), str(bare)], check=True, capture_output=True)
    report = run_crawl(settings, AUTHOR, [str(bare)])
    assert report.links[0].status == "succeeded", report.links[0].error
    [doc] = open_warehouse(settings).find(Category.REPOSITORIES)
    assert (doc.link, doc.name, doc.platform) == (bare.as_uri(), "tiny", "git")
    assert "README.md" in doc.content


def test_github_links_differing_only_in_case_are_one_link() -> None:
    variants = [
        "https://github.com/Ada/Tiny-Pipeline",
        "https://github.com/ada/tiny-pipeline",
        "https://GitHub.com/ADA/TINY-PIPELINE.git",
        "https://www.github.com/Ada/Tiny-Pipeline/tree/Main/SRC",
    ]
    unique, duplicates = dedupe([*variants, "https://gitlab.com/Ada/Tiny-Pipeline.git"])
    assert unique == ["https://github.com/ada/tiny-pipeline", "https://gitlab.com/Ada/Tiny-Pipeline.git"]
    assert duplicates == variants[1:]


def test_a_repository_stored_under_a_mixed_case_link_is_replaced_by_the_lower_case_one(
    settings: Any, make_repo: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A warehouse from before the case was folded holds the repository under `…/Ada/Tiny-Pipeline` (its id
    derived from that link): crawling it again, as linked, stores it under the lower-case link, clones the
    lower-case URL (GitHub serves any case) and removes the old document."""
    source = make_repo()
    cloned: list[str] = []

    def clone_local(self: GitHubCrawler, url: str, dest: Path, settings: Any) -> None:
        cloned.append(url)
        shutil.copytree(source, dest)

    monkeypatch.setattr(GitHubCrawler, "_clone", clone_local)
    settings = updated(settings, crawl_allow_hosts=HOSTS)
    old_link = "https://github.com/Ada/Tiny-Pipeline"
    run_crawl(settings, AUTHOR, [old_link])
    warehouse = open_warehouse(settings)
    [doc] = warehouse.find(Category.REPOSITORIES)
    old = doc.model_copy(update={"id": document_id(old_link), "link": old_link, "name": "Tiny-Pipeline"})
    warehouse.delete_document(Category.REPOSITORIES, doc.id)
    warehouse.upsert_document(old)  # as the old code stored it

    report = run_crawl(settings, AUTHOR, [old_link])
    assert report.links[0].link == "https://github.com/ada/tiny-pipeline"
    assert report.links[0].notes == [f"replaced {old_link} (the same repository)"]
    assert cloned == ["https://github.com/ada/tiny-pipeline.git"] * 2
    [new] = warehouse.find(Category.REPOSITORIES)
    assert (new.id, new.link, new.platform) == (
        document_id("https://github.com/ada/tiny-pipeline"),
        report.links[0].link,
        "github",
    )
    assert new.content == old.content
