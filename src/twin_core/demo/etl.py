"""Demo stage ``etl.crawl``: crawl real links on this machine, offline.

- the sample repository ``repos/tiny-pipeline``, committed into a git repository at a path named by
  its content in the temp folder (``<tmp>/twin-demo/<hash>/tiny-pipeline``), never under TWIN_HOME,
  and crawled as ``file://``;
- two article pages of the sample (``site/``) served by an ``http.server`` thread on
  127.0.0.1:8754, started and stopped here.

Links are document ids (uuid5 of the link), so both are the same on every run and every fresh
TWIN_HOME: the same corpus gives the same documents, hence the same datasets. When the port is
taken (another demo crawling), the stage waits for it; only a port held for longer falls back to a
random one, with a warning (the dataset split still holds: its key ignores a loopback port).
"""

from __future__ import annotations

import functools
import hashlib
import logging
import os
import shutil
import subprocess
import tempfile
import threading
import time
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from twin_core.errors import InputError

log = logging.getLogger(__name__)
AUTHOR = "Ada Quillfeather"
DEMO_PORT = 8754  # fixed, so the demo's article links (and documents) are the same on every run
PORT_WAIT_S = 60.0  # another demo's crawl holds the port for seconds
PAGES = ("substack.html", "blog.html")
_GIT_ENV = {
    "GIT_AUTHOR_NAME": AUTHOR,
    "GIT_AUTHOR_EMAIL": "ada@example.com",
    "GIT_COMMITTER_NAME": AUTHOR,
    "GIT_COMMITTER_EMAIL": "ada@example.com",
    "GIT_AUTHOR_DATE": "2024-01-01T00:00:00Z",
    "GIT_COMMITTER_DATE": "2024-01-01T00:00:00Z",
    "GIT_CONFIG_GLOBAL": os.devnull,
    "GIT_CONFIG_NOSYSTEM": "1",
}


def make_git_repo(source: Path, dest: Path) -> Path:
    """Copy ``source`` to ``dest`` and commit it (fresh each time; the content decides idempotency)."""
    if not source.is_dir():
        raise InputError(f"sample repository {source} not found")
    shutil.rmtree(dest, ignore_errors=True)
    shutil.copytree(source, dest)
    env = {**os.environ, **_GIT_ENV}
    for cmd in (["git", "init", "-q", "-b", "main"], ["git", "add", "-A"], ["git", "commit", "-q", "-m", "sample"]):
        subprocess.run(cmd, cwd=dest, env=env, check=True, capture_output=True)
    return dest


def _tree_hash(source: Path) -> str:
    digest = hashlib.sha256()
    for path in sorted(p for p in source.rglob("*") if p.is_file()):
        digest.update(path.relative_to(source).as_posix().encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()[:16]


def stable_git_repo(source: Path) -> Path:
    """The committed copy of ``source`` at ``<tmp>/twin-demo/<content hash>/<name>``: one path per content,
    whatever the TWIN_HOME, built once (in a scratch folder moved into place, so concurrent demos agree)."""
    if not source.is_dir():
        raise InputError(f"sample repository {source} not found")
    final = Path(tempfile.gettempdir()) / "twin-demo" / _tree_hash(source)
    if (final / source.name / ".git").is_dir():
        return final / source.name
    final.parent.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix=".build-", dir=final.parent))
    make_git_repo(source, scratch / source.name)
    try:
        scratch.rename(final)
    except OSError:  # another demo moved its copy in first: same content, use that one
        shutil.rmtree(scratch, ignore_errors=True)
    return final / source.name


class _QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        log.debug("demo site: " + format, *args)


def _serve(directory: Path) -> ThreadingHTTPServer:
    handler = functools.partial(_QuietHandler, directory=str(directory))
    deadline = time.monotonic() + PORT_WAIT_S
    while True:
        try:
            server = ThreadingHTTPServer(("127.0.0.1", DEMO_PORT), handler)
            break
        except OSError:
            if time.monotonic() < deadline:
                time.sleep(0.5)
                continue
            log.warning("port %d busy: serving the demo pages on a random port (new links this run)", DEMO_PORT)
            server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
            break
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, name="demo-site", daemon=True).start()
    return server


def stage(sample: Path) -> dict[str, Any]:
    from twin_core.etl.runner import run_crawl
    from twin_core.settings import get_settings, updated

    settings = get_settings()
    allow = ",".join(x for x in (settings.crawl.allow_hosts, "127.0.0.1") if x)
    settings = updated(settings, crawl_allow_hosts=allow)
    repo = stable_git_repo(sample / "repos" / "tiny-pipeline")
    site = sample / "site"
    if not all((site / page).is_file() for page in PAGES):
        raise InputError(f"demo pages {', '.join(PAGES)} not found in {site}")
    server = _serve(site)
    try:
        base = f"http://127.0.0.1:{server.server_address[1]}"
        links = [f"{base}/{page}" for page in PAGES] + [repo.as_uri()]
        report = run_crawl(settings, AUTHOR, links)
    finally:
        server.shutdown()
        server.server_close()
    return {"run_id": report.run_id, "totals": report.totals(), "domains": report.domains()}
