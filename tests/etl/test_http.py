"""The polite HTTP client against the fixture site: retries, limits, redirects, robots, encodings."""

from __future__ import annotations

import json
import socket

import pytest
from support.ports import refused_port

from twin_core.etl.errors import CrawlError
from twin_core.etl.http import HttpClient
from twin_core.settings import updated


@pytest.fixture
def http(crawl_settings):
    return HttpClient(crawl_settings)


def _reason(http: HttpClient, url: str) -> str:
    with pytest.raises(CrawlError) as err:
        http.get(url)
    return err.value.reason


def test_retries_5xx_with_backoff_then_succeeds(http, site):
    page = http.get(f"{site.base_url}/flaky/retry-ok")
    assert page.status == 200
    assert "HNSW" in page.text
    assert site.hits["/flaky/retry-ok"] == 3  # two 503s, then the page


def test_500_gives_up_after_retries_and_404_is_not_retried(http, site):
    before = dict(site.hits)  # the site is shared by the session: count this test's requests only
    assert _reason(http, f"{site.base_url}/status/500") == "http_500"
    assert site.hits["/status/500"] - before.get("/status/500", 0) == 3  # 1 + crawl_max_retries
    assert _reason(http, f"{site.base_url}/status/404") == "http_404"
    assert site.hits["/status/404"] - before.get("/status/404", 0) == 1


def test_timeout(crawl_settings, site):
    http = HttpClient(updated(crawl_settings, crawl_timeout_s=1.0))  # /slow never answers
    assert _reason(http, f"{site.base_url}/slow") == "timeout"


def test_body_size_limit_is_enforced_while_streaming(http, site):
    assert _reason(http, f"{site.base_url}/huge") == "too_large"  # 50 MB, no Content-Length


def test_binary_content_is_refused(http, site):
    assert _reason(http, f"{site.base_url}/binary.png") == "binary_content"
    assert _reason(http, f"{site.base_url}/binary-as-html") == "binary_content"


def test_redirects_followed_loops_and_private_targets_refused(http, site):
    assert http.get(f"{site.base_url}/redirect-ok").url.endswith("/blog.html")
    assert _reason(http, f"{site.base_url}/redirect-loop/a") == "redirect_loop"
    assert _reason(http, f"{site.base_url}/redirect-private") == "blocked_address"


def test_robots_txt_is_respected(http, site):
    assert _reason(http, f"{site.base_url}/private/page.html") == "robots"
    assert site.hits["/private/page.html"] == 0


def test_a_host_that_refuses_is_a_connection_error_not_a_robots_disallow(http):
    with refused_port() as port:
        origin = f"http://127.0.0.1:{port}"
        with pytest.raises(CrawlError) as err:
            http.get(f"{origin}/x")
        assert str(err.value) == (
            f"connection: cannot connect to {origin}/robots.txt: ConnectionError "
            f"(while checking robots.txt for {origin}/x)"
        )
        assert http.requests_made == 3  # robots.txt, with crawl_max_retries=2; the page is never asked for
        assert _reason(http, f"{origin}/y") == "connection"
        assert http.requests_made == 3  # the failure is remembered for the origin: no new attempts


def test_a_host_that_never_answers_is_a_timeout_not_a_robots_disallow(crawl_settings):
    http = HttpClient(updated(crawl_settings, crawl_timeout_s=1.0, crawl_max_retries=0))
    with socket.socket() as sock:  # accepts connections (the kernel's backlog) but never answers
        sock.bind(("127.0.0.1", 0))
        sock.listen(4)
        origin = f"http://127.0.0.1:{sock.getsockname()[1]}"
        with pytest.raises(CrawlError) as err:
            http.get(f"{origin}/x")
    assert str(err.value) == (
        f"timeout: no answer from {origin}/robots.txt within 1.0s (while checking robots.txt for {origin}/x)"
    )


def test_a_robots_txt_answering_503_fails_the_link_as_503_not_as_a_robots_refusal(crawl_settings):
    """A site under maintenance (5xx on everything) is not crawled (RFC 9309), but its links fail with the
    temporary http_503, which the crawl retries (exit 4), not the permanent robots refusal."""
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    class Maintenance(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802
            self.send_response(503)
            self.end_headers()

        def log_message(self, *args) -> None:
            pass

    http = HttpClient(updated(crawl_settings, crawl_max_retries=0))
    server = ThreadingHTTPServer(("127.0.0.1", 0), Maintenance)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        origin = f"http://127.0.0.1:{server.server_address[1]}"
        assert _reason(http, f"{origin}/post") == "http_503"
        assert http.requests_made == 1  # robots.txt only: the page is never asked for
    finally:
        server.shutdown()
        server.server_close()


@pytest.mark.parametrize(
    ("stderr", "reason"),
    [
        ("fatal: unable to access 'https://github.com/a/b/': Could not resolve host: github.com", "dns"),
        ("fatal: unable to access 'https://github.com/a/b/': Failed to connect to github.com port 443", "connection"),
        ("fatal: unable to access 'https://github.com/a/b/': Connection timed out after 30001 milliseconds", "timeout"),
        ("fatal: unable to access 'https://github.com/a/b/': The requested URL returned error: 502", "http_502"),
        ("fatal: unable to access 'https://github.com/a/b/': The requested URL returned error: 403", "git"),
        ("fatal: repository 'https://github.com/a/b/' not found", "git"),
    ],
)
def test_a_failed_clone_tells_the_network_from_a_missing_repository(stderr: str, reason: str) -> None:
    from twin_core.etl.crawlers.github import git_failure_reason

    assert git_failure_reason(stderr) == reason


def test_user_agent_is_configurable(crawl_settings, site):
    settings = updated(crawl_settings, crawl_user_agent="TwinTest/1.0")
    headers = json.loads(HttpClient(settings).get(f"{site.base_url}/headers").text)
    assert headers["User-Agent"] == "TwinTest/1.0"


def test_non_utf8_page_is_decoded_with_its_charset(http, site):
    page = http.get(f"{site.base_url}/latin1.html")
    assert page.encoding == "iso-8859-1"  # the charset of the Content-Type header
    assert "expliqués" in page.text


def test_per_domain_concurrency_limit(crawl_settings, site):
    from concurrent.futures import ThreadPoolExecutor

    http = HttpClient(updated(crawl_settings, crawl_per_domain_concurrency=2))
    site.max_inflight = 0
    urls = [f"{site.base_url}/articles/limit-{i}.html?delay=0.3" for i in range(6)]
    with ThreadPoolExecutor(max_workers=6) as pool:
        pages = list(pool.map(http.get, urls))
    assert all(p.status == 200 for p in pages)
    assert site.max_inflight == 2  # six threads, never more than two requests at the site


def test_error_status_with_a_challenge_body_is_reported_as_challenge(http, site):
    # Cloudflare-style walls answer 403 with a challenge page: the reason says so, and it is not retried.
    before = dict(site.hits)
    assert _reason(http, f"{site.base_url}/medium/@ada/challenged") == "challenge"
    assert site.hits["/medium/@ada/challenged"] - before.get("/medium/@ada/challenged", 0) == 1
