"""URL parsing, link normalization and the SSRF guard."""

from __future__ import annotations

import pytest

from twin_core.etl.errors import CrawlError
from twin_core.etl.runner import dedupe
from twin_core.etl.safety import check_target, domain_of, normalize_link
from twin_core.settings import load_settings


@pytest.fixture
def strict(twin_home):
    return load_settings(crawl_allow_hosts="", crawl_allow_private=False)


@pytest.mark.parametrize(
    "link",
    [
        "http://127.0.0.1/x",
        "http://localhost:8080/",
        "http://10.1.2.3/",
        "http://192.168.0.10/",
        "http://172.16.5.4/",
        "http://169.254.169.254/latest/meta-data/",  # cloud metadata
        "http://[::1]/",
        "http://[fd00:ec2::254]/",
        "http://0.0.0.0/",
        "http://[::ffff:127.0.0.1]/",
    ],
)
def test_private_and_metadata_targets_are_refused(strict, link):
    with pytest.raises(CrawlError) as err:
        check_target(link, strict)
    assert err.value.reason == "blocked_address"
    assert "TWIN_CRAWL_ALLOW_HOSTS" in err.value.message


def test_allow_list_by_ip_cidr_or_flag(twin_home):
    assert check_target("http://127.0.0.1:9/x", load_settings(crawl_allow_hosts="127.0.0.1"))
    assert check_target("http://10.2.3.4/", load_settings(crawl_allow_hosts="10.0.0.0/8"))
    assert check_target("http://192.168.1.1/", load_settings(crawl_allow_private=True))
    with pytest.raises(CrawlError):
        check_target("http://10.2.3.4/", load_settings(crawl_allow_hosts="127.0.0.1"))


@pytest.mark.parametrize(
    ("link", "reason"),
    [
        ("ftp://example.com/file", "unsupported_scheme"),
        ("javascript:alert(1)", "unsupported_scheme"),
        ("http:///nohost", "invalid_url"),
        ("http://example.com:99999/", "invalid_url"),
        ("example.com/page", "invalid_url"),
        ("http://no-such-host.invalid/", "dns"),
    ],
)
def test_bad_urls_get_a_clear_reason(strict, link, reason):
    with pytest.raises(CrawlError) as err:
        check_target(link, strict)
    assert err.value.reason == reason


def test_normalize_and_dedupe():
    assert normalize_link(" HTTP://Example.COM:80/a#frag ") == "http://example.com/a"
    assert normalize_link("https://example.com") == "https://example.com/"
    unique, dups = dedupe(["https://a.dev/x", "https://A.dev/x#top", "", "https://a.dev/y"])
    assert unique == ["https://a.dev/x", "https://a.dev/y"]
    assert dups == ["https://A.dev/x#top"]
    assert domain_of("file:///tmp/repo") == "file"
    assert domain_of("https://a.dev:8443/x") == "a.dev:8443"
