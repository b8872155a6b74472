"""URL checks and the SSRF guard: refuse targets on loopback, private, link-local or metadata addresses.

A link is resolved with ``getaddrinfo`` and *every* address must be public, unless the host (or one
of its addresses, or a CIDR holding it) is listed in ``TWIN_CRAWL_ALLOW_HOSTS`` or
``TWIN_CRAWL_ALLOW_PRIVATE`` is set. Redirect targets go through the same check.
"""

from __future__ import annotations

import ipaddress
import socket
from functools import lru_cache
from urllib.parse import SplitResult, urlsplit, urlunsplit

from twin_core.etl.errors import CrawlError
from twin_core.settings import Settings

WEB_SCHEMES = ("http", "https")
# Cloud metadata endpoints that are not caught by the link-local rule (AWS IPv6, Alibaba).
_METADATA = {ipaddress.ip_address("fd00:ec2::254"), ipaddress.ip_address("100.100.100.200")}


def normalize_link(link: str) -> str:
    """Canonical form used to deduplicate links: trimmed, no fragment, lower-case scheme and host."""
    link = link.strip()
    if not link or "://" not in link:
        return link
    parts = urlsplit(link)
    netloc = parts.netloc.lower()
    if parts.port and (parts.scheme, parts.port) in (("http", 80), ("https", 443)):
        netloc = netloc.rsplit(":", 1)[0]
    return urlunsplit((parts.scheme.lower(), netloc, parts.path or ("/" if netloc else ""), parts.query, ""))


def parse_web_url(link: str) -> SplitResult:
    """Split an http(s) URL or raise a CrawlError naming what is wrong with it."""
    try:
        parts = urlsplit(link)
        _ = parts.port  # raises on a bad port
    except ValueError as exc:
        raise CrawlError("invalid_url", f"{link!r} is not a valid URL ({exc})") from None
    if not parts.scheme:
        raise CrawlError("invalid_url", f"{link!r} is not a valid URL (no scheme)")
    if parts.scheme not in WEB_SCHEMES:
        raise CrawlError("unsupported_scheme", f"{parts.scheme}:// is not supported for {link!r} (use http or https)")
    if not parts.hostname:
        raise CrawlError("invalid_url", f"{link!r} has no host")
    return parts


def _allowed_networks(allow_hosts: str) -> tuple[set[str], list[ipaddress._BaseNetwork]]:
    names: set[str] = set()
    nets: list[ipaddress._BaseNetwork] = []
    for item in (x.strip().lower() for x in allow_hosts.split(",")):
        if not item:
            continue
        try:
            nets.append(ipaddress.ip_network(item, strict=False))
        except ValueError:
            names.add(item)
    return names, nets


def _is_public(ip: ipaddress._BaseAddress) -> bool:
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return not (
        ip.is_loopback
        or ip.is_private
        or ip.is_link_local
        or ip.is_multicast
        or ip.is_reserved
        or ip.is_unspecified
        or ip in _METADATA
    )


@lru_cache(maxsize=512)
def _resolve(host: str, port: int) -> tuple[str, ...]:
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        raise CrawlError("dns", f"cannot resolve host {host!r}: {exc.strerror or exc}") from None
    except UnicodeError:
        raise CrawlError("invalid_url", f"host {host!r} is not a valid name") from None
    return tuple(sorted({info[4][0] for info in infos}))


def check_target(link: str, settings: Settings) -> SplitResult:
    """Parse ``link`` and refuse it if its host resolves to a non-public address that is not allow-listed."""
    parts = parse_web_url(link)
    host = parts.hostname or ""
    if settings.crawl.allow_private:
        return parts
    names, nets = _allowed_networks(settings.crawl.allow_hosts)
    if host.lower() in names:
        return parts
    port = parts.port or (443 if parts.scheme == "https" else 80)
    for addr in _resolve(host, port):
        ip = ipaddress.ip_address(addr.split("%", 1)[0])
        if _is_public(ip) or addr in names or any(ip in net for net in nets):
            continue
        raise CrawlError(
            "blocked_address",
            f"{host} resolves to non-public address {addr}; refused (allow it with TWIN_CRAWL_ALLOW_HOSTS)",
        )
    return parts


def domain_of(link: str) -> str:
    """Report key of a link: host[:port] for web links, 'file' for local repositories."""
    if "://" not in link:
        return "local"
    parts = urlsplit(link)
    if parts.scheme == "file":
        return "file"
    return (parts.netloc or parts.scheme or "invalid").lower()
