"""LinkedIn crawler driven through real headless Chromium (Debian chromium + chromium-driver)
against a LinkedIn-like login page and infinite-scroll activity feed on 127.0.0.1."""

from __future__ import annotations

import os
import socket

import pytest
from pydantic import SecretStr

from twin_core.domain.documents import Category, UserDocument
from twin_core.etl.crawlers.base import CrawlContext
from twin_core.etl.crawlers.linkedin import LinkedInCrawler
from twin_core.etl.errors import CrawlError
from twin_core.etl.http import HttpClient
from twin_core.settings import updated

pytestmark = pytest.mark.browser
USER = UserDocument.from_full_name("Ada Quillfeather")


@pytest.fixture(scope="module")
def browser_ok() -> None:
    """Skip (with the reason) when Chromium or its driver is not installed on this machine. Installed, it must
    start: a browser that fails to start fails the tests (the crawler's error says why)."""
    from twin_core.settings import load_settings

    sources = load_settings().sources
    missing = [path for path in (sources.browser_binary, sources.browser_driver) if not os.access(path, os.X_OK)]
    if missing:
        pytest.skip(f"headless Chromium not installed: {', '.join(missing)} (apt-get install chromium chromium-driver)")


def _crawl(settings, link: str, **update):
    settings = updated(settings, **update)
    ctx = CrawlContext(settings=settings, http=HttpClient(settings), user=USER)
    return LinkedInCrawler().crawl(link, ctx)


def test_login_with_credentials_scrolls_the_feed_up_to_the_limit(browser_ok, crawl_settings, site, site_module):
    mod = site_module
    docs = _crawl(
        crawl_settings,
        f"{site.base_url}/linkedin/in/ada-quillfeather/",
        linkedin_username=mod.LINKEDIN_USER,
        linkedin_password=SecretStr(mod.LINKEDIN_PASSWORD),
        linkedin_max_posts=5,
        linkedin_max_scrolls=5,
        linkedin_scroll_wait_s=30.0,  # the limit is reached on the first scroll: never waited out
    )
    assert len(docs) == 5  # 3 on load + 2 per scroll, capped at the limit
    assert all(d.category is Category.POSTS and d.platform == "linkedin" for d in docs)
    assert docs[0].content["Content"] == mod.LINKEDIN_POSTS[0]
    assert len({d.link for d in docs}) == 5
    assert docs[0].link.startswith(f"{site.base_url}/linkedin/feed/update/urn:li:activity:")


def test_session_cookie_login_and_end_of_feed(browser_ok, crawl_settings, site, site_module):
    mod = site_module
    docs = _crawl(
        crawl_settings,
        f"{site.base_url}/linkedin/in/ada-quillfeather/",
        linkedin_li_at=SecretStr(mod.LINKEDIN_COOKIE),
        linkedin_max_posts=50,
        linkedin_max_scrolls=10,
        linkedin_scroll_wait_s=10.0,  # waited out once, at the end of the feed; ample for a loaded Chromium
    )
    assert [d.content["Content"] for d in docs] == mod.LINKEDIN_POSTS  # the whole feed, in order


def test_rejected_cookie_and_wrong_password_fail_clearly(browser_ok, crawl_settings, site):
    link = f"{site.base_url}/linkedin/in/ada-quillfeather/"
    with pytest.raises(CrawlError) as err:
        _crawl(crawl_settings, link, linkedin_li_at=SecretStr("expired"))
    assert err.value.reason == "login_failed"
    with pytest.raises(CrawlError) as err:
        _crawl(
            crawl_settings,
            link,
            linkedin_username="ada@example.com",
            linkedin_password=SecretStr("wrong"),
            # the wait for a redirect that never comes ends at this bound, and each page load must fit in it too:
            # 2 s let a page load time out on a loaded CI machine (selenium's TimeoutException, not login_failed)
            browser_timeout_s=10.0,
        )
    assert err.value.reason == "login_failed"


def test_a_host_that_never_answers_or_refuses_fails_with_the_url(browser_ok, crawl_settings):
    """A page load past ``browser_timeout_s`` and a refused connection are CrawlErrors naming the URL, not
    selenium's bare exceptions. The silent host is a listening socket that never accepts: the kernel completes the
    handshake and the request waits for an answer that never comes, however loaded the machine is."""
    with socket.create_server(("127.0.0.1", 0)) as silent, socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))  # bound, never listening: connections are refused
        errors = {}
        # the bound is each page load's timeout: the silent host must reach it; the refused one, whose error page
        # Chromium also loads (0.6-1 s here idle), must not, however loaded the machine
        for name, sock, bound in (("silent", silent, 1.0), ("closed", closed, 60.0)):
            base = f"http://127.0.0.1:{sock.getsockname()[1]}"
            with pytest.raises(CrawlError) as err:
                _crawl(
                    crawl_settings,
                    f"{base}/in/ada-quillfeather/",
                    linkedin_base_url=base,
                    linkedin_li_at=SecretStr("any"),  # the cookie path opens the site's root first
                    browser_timeout_s=bound,
                )
            errors[name] = (base, err.value)
    base, error = errors["silent"]
    assert (error.reason, error.message) == ("timeout", f"{base}/ did not load in the browser within 1.0s")
    base, error = errors["closed"]
    assert error.reason == "connection"
    assert error.message.startswith(f"the browser could not open {base}/: ")
    assert "ERR_CONNECTION_REFUSED" in error.message
