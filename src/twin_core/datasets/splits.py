"""The train/test split, by document, keyed on what stays the same about a document: its link.

Document ids are uuid5 of the stored link, and a local crawl's link carries what changes from run to
run (the port of a local server, the folder of a local repository). The split key drops exactly
those parts (``link_key``), so the same corpus gives the same split on every machine and home.

Documents are ranked by a hash of their key and held out in that order until the test split has
``test_percent`` % of the documents *and* ``min_test_rows`` rows (the evaluation's minimum sample),
never more than ``MAX_TEST_SHARE`` of the rows, and always one document on each side.
"""

from __future__ import annotations

import hashlib
import ipaddress
import math
from collections import Counter
from pathlib import PurePosixPath
from typing import Any
from urllib.parse import unquote, urlsplit

Row = dict[str, Any]
MAX_TEST_SHARE = 0.4  # a small author still keeps most of their rows for training
_LOOPBACK_NAMES = {"localhost", "localhost.localdomain"}


def _is_loopback(host: str) -> bool:
    if host in _LOOPBACK_NAMES or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def link_key(link: str) -> str:
    """``https://www.Example.com/a/?x#y`` -> ``example.com/a?x``; a local repository -> ``local/<folder>``;
    a loopback server loses its port (``127.0.0.1/page.html``)."""
    link = link.strip()
    if link.startswith("file://") or "://" not in link:
        path = unquote(urlsplit(link).path) if link.startswith("file://") else link
        return "local/" + PurePosixPath(path.rstrip("/")).name.removesuffix(".git")
    parts = urlsplit(link)
    host = (parts.hostname or "").lower().removeprefix("www.")
    if parts.port and not _is_loopback(host) and parts.port not in (80, 443):
        host = f"{host}:{parts.port}"
    path = parts.path.rstrip("/")
    return f"{host}{path}" + (f"?{parts.query}" if parts.query else "")


def _rank(key: str) -> str:
    return hashlib.sha256(f"split|{key}".encode()).hexdigest()


def held_out_keys(rows_per_key: Counter, test_percent: int, min_test_rows: int) -> set[str]:
    """The link keys of the held-out documents (see the module docstring)."""
    keys = sorted(rows_per_key, key=_rank)
    total = sum(rows_per_key.values())
    if not test_percent or len(keys) < 2:
        return set()
    want_docs = max(1, math.ceil(len(keys) * test_percent / 100))
    want_rows = min(min_test_rows, int(total * MAX_TEST_SHARE))
    test: list[str] = []
    rows = 0
    for key in keys[:-1]:  # the last-ranked document always trains
        if len(test) >= want_docs and rows >= want_rows:
            break
        if test and rows + rows_per_key[key] > total * MAX_TEST_SHARE:
            continue  # too big to hold out: a smaller document further down may fit
        test.append(key)
        rows += rows_per_key[key]
    return set(test)


def assign_splits(rows: list[Row], test_percent: int, min_test_rows: int = 0) -> None:
    """Set ``row['split']`` by document (its link key), the same on every run of the same corpus."""
    per_key = Counter(link_key(r["link"]) for r in rows)
    test = held_out_keys(per_key, test_percent, min_test_rows)
    for r in rows:
        r["split"] = "test" if link_key(r["link"]) in test else "train"
