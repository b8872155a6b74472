"""`twin etl crawl` end to end in a subprocess: acceptance, idempotency, bad input, config files."""

from __future__ import annotations

from pathlib import Path

import pytest

from twin_core.domain.documents import Category

pytestmark = pytest.mark.slow


def _snapshot(settings) -> dict:
    """Every warehouse row, minus the crawl timestamps that a re-run may touch."""
    from twin_core.stores.warehouse import open_warehouse

    warehouse = open_warehouse(settings)
    out = {"users": [u.to_mongo() for u in warehouse.users()]}
    for cat in Category:
        docs = warehouse.iter_documents(cat, include_quarantined=True)
        out[cat.collection] = [
            {k: v for k, v in d.to_mongo().items() if k not in ("crawled_at", "checked_at")} for d in docs
        ]
    return out


def test_article_and_repository_then_unchanged(twin, crawl_settings, site, make_repo):
    repo = make_repo()
    args = ["etl", "crawl", "--user", "Ada Quillfeather", "--link", f"{site.base_url}/substack.html"]
    args += ["--link", repo.as_uri()]
    first = twin(*args)
    assert first.returncode == 0, first.stderr[-2000:]
    assert first.result["status"] == "ok"
    assert first.result["totals"]["documents_created"] == 2
    snap = _snapshot(crawl_settings)
    assert len(snap["articles"]) == 1
    assert len(snap["repositories"]) == 1
    assert len(snap["users"]) == 1
    checked = twin("validate", "raw")  # the pipeline's next step: it settles the documents it has seen
    assert (checked.returncode, checked.result["documents"], checked.result["quarantined"]) == (0, 2, []), (
        checked.stderr[-2000:]
    )
    assert _snapshot(crawl_settings) == snap

    second = twin(*args)
    assert second.returncode == 0, second.stderr[-2000:]
    totals = second.result["totals"]
    assert totals["unchanged"] == 2
    assert totals["documents_unchanged"] == 2
    assert totals["documents_created"] == 0
    domains = second.result["domains"]
    assert domains["file"]["unchanged"] == 1
    assert domains[site.base_url.removeprefix("http://")]["unchanged"] == 1
    assert _snapshot(crawl_settings) == snap  # byte-identical apart from crawled_at/checked_at

    from twin_core.stores.artifacts import open_artifact_store

    report = open_artifact_store(crawl_settings).get_json(f"etl/reports/{second.result['run_id']}.json")
    assert report["totals"] == totals


def test_bad_links_fail_alone_and_the_rest_completes(twin, crawl_settings, site, tmp_path):
    # crawl_settings' 5 s timeout: ample for every other link on a loaded machine; /slow never answers
    assert crawl_settings.crawl.timeout_s >= 5
    b = site.base_url
    bad = {
        "not a url": "invalid_url",
        "ftp://example.com/x": "unsupported_scheme",
        "http://10.20.30.40/": "blocked_address",
        "http://no-such-host.invalid/": "dns",
        f"{b}/slow": "timeout",
        f"{b}/status/404": "http_404",
        f"{b}/status/500": "http_500",
        f"{b}/redirect-loop/a": "redirect_loop",
        f"{b}/huge": "too_large",
        f"{b}/binary.png": "binary_content",
        f"{b}/empty.html": "empty",
        f"{b}/challenge.html": "challenge",
        f"{b}/linkedin/in/ada/": "credentials",
        (tmp_path / "no-repo").as_uri(): "git",
    }
    args = ["etl", "crawl", "--user", "Ada Quillfeather", "--link", f"{b}/blog.html", "--link", f"{b}/blog.html#dup"]
    for link in bad:
        args += ["--link", link]
    run = twin(*args)
    assert run.returncode == 3
    assert run.result["status"] == "partial"
    assert run.result["duplicates"] == [f"{b}/blog.html#dup"]
    by_link = {r["link"]: r for r in run.result["links"]}
    assert by_link[f"{b}/blog.html"]["status"] == "succeeded"
    for link, reason in bad.items():
        key = next(k for k in by_link if k == link or k.rstrip("/") == link.rstrip("/"))
        assert by_link[key]["status"] == "failed", by_link[key]
        assert by_link[key]["reason"] == reason, by_link[key]
    local = run.result["domains"][b.removeprefix("http://")]
    assert local["succeeded"] == 1
    assert local["failed"] == len(local["failures"]) > 5
    from twin_core.stores.warehouse import open_warehouse

    wh = open_warehouse(crawl_settings)
    assert [d.link for d in wh.find(Category.ARTICLES)] == [f"{b}/blog.html"]


def test_config_file_and_setting_overrides(twin, crawl_settings, site, tmp_path):
    cfg = tmp_path / "run.yaml"
    cfg.write_text(
        f"user_full_name: Ada Quillfeather\nlinks:\n  - {site.base_url}/blog.html\nsettings:\n  crawl_concurrency: 1\n"
    )
    run = twin("etl", "crawl", "--config", str(cfg), "--setting", "crawl_user_agent=TwinConfigTest/1")
    assert run.returncode == 0, run.stderr[-2000:]
    assert run.result["totals"]["documents_created"] == 1

    bad = tmp_path / "bad.yaml"
    bad.write_text("links: [1, 2]\n")
    run = twin("etl", "crawl", "--config", str(bad), "--user", "Ada Quillfeather")
    assert run.returncode == 3
    assert "links must be a list of strings" in run.result["error"]
    secret = tmp_path / "secret.yaml"
    secret.write_text("links: []\nsettings: {linkedin_password: hunter2}\n")
    run = twin("etl", "crawl", "--config", str(secret))
    assert run.returncode == 3
    assert "must come from the environment" in run.result["error"]
    run = twin("etl", "crawl", "--link", f"{site.base_url}/blog.html")
    assert run.returncode == 3
    assert "no author" in run.result["error"]
    run = twin("etl", "crawl", "--user", "Ada Quillfeather", "--config", str(Path(tmp_path / "missing.yaml")))
    assert run.returncode == 3
    assert "does not exist" in run.result["error"]
    run = twin("etl", "crawl", "--user", "Ada Quillfeather", "--config", str(tmp_path))  # a folder
    assert run.returncode == 3
    assert run.result["error"] == f"ETL config {tmp_path} is not a file (give the path of a YAML file)"
