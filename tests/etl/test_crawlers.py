"""Crawlers and the dispatcher, in process, against the fixture site and local git repositories."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest

from twin_core.domain.documents import Category, UserDocument
from twin_core.etl.crawlers.article import ArticleCrawler
from twin_core.etl.crawlers.base import CrawlContext
from twin_core.etl.crawlers.github import GitHubCrawler
from twin_core.etl.crawlers.linkedin import LinkedInCrawler
from twin_core.etl.crawlers.medium import MediumCrawler
from twin_core.etl.dispatcher import Dispatcher
from twin_core.etl.errors import CrawlError
from twin_core.etl.http import HttpClient
from twin_core.settings import updated

USER = UserDocument.from_full_name("Ada Quillfeather")


@pytest.fixture
def ctx(crawl_settings):
    return CrawlContext(settings=crawl_settings, http=HttpClient(crawl_settings), user=USER)


def test_dispatcher_loads_builtins_from_entry_points(crawl_settings, site):
    from importlib.metadata import entry_points

    assert {"article", "github", "linkedin", "medium"} <= {ep.name for ep in entry_points(group="twin_core.crawlers")}
    d = Dispatcher.from_entry_points()
    pick = lambda link: d.crawler_for(link, crawl_settings).name  # noqa: E731
    assert pick("https://github.com/adaquill/tiny-pipeline/tree/main/src") == "github"
    assert pick("file:///tmp/some/repo") == "github"
    assert pick("https://medium.com/@ada/post-123") == "medium"
    assert pick(f"{site.base_url}/medium/@ada/x") == "medium"
    assert pick("https://www.linkedin.com/in/ada/") == "linkedin"
    assert pick("https://adaquill.substack.com/p/chunking") == "article"
    assert pick("https://anything.example/blog/post") == "article"  # fallback
    with pytest.raises(CrawlError) as err:
        d.crawler_for("gopher://old.example/", crawl_settings)
    assert err.value.reason == "unsupported_scheme"


def test_substack_article_is_extracted_without_page_furniture(ctx, site):
    [doc] = ArticleCrawler().crawl(f"{site.base_url}/substack.html", ctx)
    assert doc.category is Category.ARTICLES
    assert doc.platform == "substack"
    assert doc.content["Title"] == "Chunking Is Not a Detail"
    assert doc.content["Subtitle"].startswith("Why the size of your chunks")
    assert doc.content["language"] == "en"
    assert doc.content["authors"] == ["Ada Quillfeather"]
    assert doc.published_at is not None
    assert doc.published_at.year == 2024
    text = doc.content["Content"]
    assert text.startswith("When people build their first retrieval system")
    for furniture in ("Subscribe", "Share this post", "comments", "Archive", "Privacy"):
        assert furniture not in text
    assert doc.author_id == USER.id
    assert doc.link == f"{site.base_url}/substack.html"


def test_blog_and_non_utf8_articles(ctx, site):
    [blog] = ArticleCrawler().crawl(f"{site.base_url}/blog.html", ctx)
    assert blog.platform == "blog"
    assert "Popular posts" not in blog.content["Content"]
    [latin] = ArticleCrawler().crawl(f"{site.base_url}/latin1.html", ctx)
    assert latin.content["language"] == "fr"
    assert "résultat" in latin.content["Content"]


def test_empty_page_is_a_failed_crawl(ctx, site):
    with pytest.raises(CrawlError) as err:
        ArticleCrawler().crawl(f"{site.base_url}/empty.html", ctx)
    assert err.value.reason == "empty"


def test_page_with_too_many_elements_is_refused_not_scored(ctx, site):
    # 50,000 <p>word</p> (550 KB, under the byte limit): newspaper4k's scoring is quadratic in them.
    link = f"{site.base_url}/many-elements"
    with pytest.raises(CrawlError) as err:
        ArticleCrawler().crawl(link, ctx)
    assert str(err.value) == (
        f"too_complex: {link} has 50,002 HTML elements after removing page furniture (limit 20,000); "
        "too many to extract an article from in bounded time"
    )


def test_long_article_of_a_few_thousand_elements_is_extracted_whole(ctx, site, site_module):
    [doc] = ArticleCrawler().crawl(f"{site.base_url}/long-article", ctx)
    assert doc.content["Title"] == "A Very Long Post"
    paragraphs = range(site_module.LONG_ARTICLE_PARAGRAPHS)
    assert doc.content["Content"] == "\n\n".join(site_module.long_article_paragraph(i) for i in paragraphs)


def test_challenge_page_served_as_200_is_never_content(ctx, site):
    with pytest.raises(CrawlError) as err:
        ArticleCrawler().crawl(f"{site.base_url}/challenge.html", ctx)
    assert err.value.reason == "challenge"


def test_medium_article_page(ctx, site):
    [doc] = MediumCrawler().crawl(f"{site.base_url}/medium/@ada/pipelines-lie", ctx)
    assert doc.platform == "medium"
    assert "idempotent" in doc.content["Content"]


def test_medium_falls_back_to_the_rss_feed(ctx, site):
    [doc] = MediumCrawler().crawl(f"{site.base_url}/medium/@ada/rss-only", ctx)
    assert doc.content["Title"] == "Written for the feed only"
    assert "Every pipeline lies" in doc.content["Content"]
    assert any("challenge" in n for n in ctx.notes)  # the page was a 403 challenge wall


@pytest.mark.browser
def test_medium_challenge_everywhere_is_a_failed_crawl(ctx, site):
    with pytest.raises(CrawlError) as err:
        MediumCrawler().crawl(f"{site.base_url}/medium/@ada/challenged", ctx)
    assert err.value.reason == "challenge"  # the browser fallback saw it too (or could not start)


def test_linkedin_without_credentials_fails_clearly(ctx, site):
    with pytest.raises(CrawlError) as err:
        LinkedInCrawler().crawl(f"{site.base_url}/linkedin/in/ada/", ctx)
    assert err.value.reason == "credentials"
    assert "TWIN_LINKEDIN_LI_AT" in err.value.message


def test_git_repository_is_kept_byte_exact_and_filtered(ctx, make_repo, crawl_settings, tmp_path, monkeypatch):
    exact = "def f(x):\n\tif x:  \n\t\treturn 1\r\n    # trailing spaces   \n\n\n"
    repo = make_repo(
        {
            "src/exact.py": exact,
            "node_modules/dep/index.js": "module.exports = 1;\n",
            "package-lock.json": "{}\n",
            "logo.png": b"\x89PNG\r\n\x1a\n\x00\x00",
            "data/blob.txt": b"abc\x00def",
            "big.txt": "x" * (crawl_settings.crawl.repo_max_file_bytes + 1),
            "latin1.txt": "caf\xe9".encode("latin-1"),
        }
    )
    # the clone's temporary folder goes to this test's own folder (the shared /tmp holds other processes' clones)
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))
    made: list[str] = []
    mkdtemp = tempfile.mkdtemp

    def recorded(*args, **kwargs):
        made.append(mkdtemp(*args, **kwargs))
        return made[-1]

    monkeypatch.setattr(tempfile, "mkdtemp", recorded)
    [doc] = GitHubCrawler().crawl(repo.as_uri(), ctx)
    clones = [Path(d) for d in made if Path(d).name.startswith("twin-git-")]
    assert [d.parent for d in clones] == [scratch]  # the crawl cloned into a folder of its own, here
    assert not [n for n in os.listdir(scratch) if n.startswith("twin-git-")]  # and removed it
    assert doc.category is Category.REPOSITORIES
    assert doc.platform == "git"
    assert doc.name == "repo"
    assert doc.content["src/exact.py"] == exact
    for rel, text in doc.content.items():
        assert (repo / rel).read_bytes() == text.encode("utf-8")
    for skipped in ("node_modules/dep/index.js", "package-lock.json", "logo.png", "data/blob.txt", "big.txt"):
        assert skipped not in doc.content
    assert "latin1.txt" not in doc.content
    assert any("too_large=1" in n and "binary=1" in n for n in ctx.notes)


def test_git_local_path_file_count_limit_and_missing_repo(ctx, make_repo, crawl_settings):
    repo = make_repo(from_sample=False)
    ctx.settings = updated(crawl_settings, crawl_repo_max_files=1)
    [doc] = GitHubCrawler().crawl(str(repo), ctx)  # a plain path works too
    assert len(doc.content) == 1
    assert doc.link == repo.as_uri()
    with pytest.raises(CrawlError) as err:
        GitHubCrawler().crawl((repo.parent / "missing").as_uri(), ctx)
    assert err.value.reason == "git"
    (repo.parent / "not-git").mkdir()
    with pytest.raises(CrawlError) as err:
        GitHubCrawler().crawl(str(repo.parent / "not-git"), ctx)
    assert err.value.reason == "not_a_repository"
    assert str(err.value) == (
        f"not_a_repository: {repo.parent / 'not-git'} is a folder but not a git repository (no .git inside); "
        "run `git init` and commit, or link the repository itself"
    )


def test_a_file_link_is_reported_as_a_file_not_a_missing_repository(ctx, tmp_path):
    file = (tmp_path / "passwd").resolve()
    file.write_text("root:x:0:0:root:/root:/bin/sh\n")
    with pytest.raises(CrawlError) as err:
        GitHubCrawler().crawl(file.as_uri(), ctx)
    assert str(err.value) == f"not_a_repository: {file} is a file, not a git repository; link the repository folder"


def test_github_urls_are_checked_before_cloning(ctx):
    crawler = GitHubCrawler()
    ctx.settings = updated(ctx.settings, crawl_allow_hosts="github.com")  # no DNS offline
    url, name = crawler.clone_url("https://github.com/adaquill/tiny-pipeline/tree/main/src", ctx.settings)
    assert (url, name) == ("https://github.com/adaquill/tiny-pipeline.git", "tiny-pipeline")
    with pytest.raises(CrawlError) as err:
        crawler.crawl("https://github.com/", ctx)
    assert err.value.reason == "invalid_url"


def test_local_repositories_can_be_disabled(ctx, make_repo, crawl_settings):
    ctx.settings = updated(crawl_settings, crawl_allow_local_repos=False)
    with pytest.raises(CrawlError) as err:
        GitHubCrawler().crawl(make_repo(from_sample=False).as_uri(), ctx)
    assert err.value.reason == "blocked_address"


def test_local_repositories_are_off_by_default_only_in_kubernetes_mode(ctx, make_repo, crawl_settings):
    repo = make_repo(from_sample=False)
    assert updated(crawl_settings, crawl_allow_local_repos=None).local_repos_allowed is True
    ctx.settings = updated(crawl_settings, crawl_allow_local_repos=None, execution="kubernetes")
    assert ctx.settings.local_repos_allowed is False
    with pytest.raises(CrawlError) as err:
        GitHubCrawler().crawl(repo.as_uri(), ctx)
    assert err.value.reason == "blocked_address"
    ctx.settings = updated(crawl_settings, crawl_allow_local_repos=True, execution="kubernetes")
    [doc] = GitHubCrawler().crawl(repo.as_uri(), ctx)
    assert doc.link == repo.as_uri()


def test_sample_repository_is_crawled_whole(ctx, make_repo):
    repo = make_repo()
    [doc] = GitHubCrawler().crawl(repo.as_uri(), ctx)
    files = {p.relative_to(repo).as_posix() for p in repo.rglob("*") if p.is_file() and ".git" not in p.parts}
    assert set(doc.content) == files
    assert Path(repo / "README.md").read_text() == doc.content["README.md"]
