"""One demo site (the sample pages ``twin_core.demo.etl`` serves) for a whole test, on a port of its own.

The demo serves its pages on the fixed port 8754, so that the documents' links (and ids) are the same on every
run; when another process holds 8754 for longer than the demo waits, it falls back to a random port, and the
links of two builds differ. ``kept_demo_site(monkeypatch)`` makes every demo crawl of the test use one server,
started on a free port at the first crawl and kept until the block ends: the same links for each build, whatever
else runs on the machine. The demo's own code is unchanged; only its ``_serve`` is replaced meanwhile.
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest


class _KeptServer(ThreadingHTTPServer):
    """The demo stage stops its server after each crawl: this one carries on until ``stop()``."""

    daemon_threads = True

    def shutdown(self) -> None:  # the stage's own stop: the next build of the test crawls the same site
        pass

    def server_close(self) -> None:
        pass

    def stop(self) -> None:
        super().shutdown()
        super().server_close()


@dataclass
class KeptDemoSite:
    demo_serve: Callable[[Path], Any]  # the demo's own ``_serve``, to put back for a build that needs it
    crawls: int = 0  # how many demo crawls this site served
    server: _KeptServer | None = field(default=None, repr=False)

    @property
    def base_url(self) -> str:
        assert self.server is not None, "no demo crawl yet"
        return f"http://127.0.0.1:{self.server.server_address[1]}"


@contextmanager
def kept_demo_site(monkeypatch: pytest.MonkeyPatch) -> Iterator[KeptDemoSite]:
    """``with kept_demo_site(monkeypatch) as site:`` every demo crawl meanwhile serves from ``site``."""
    import twin_core.demo.etl as demo_etl

    site = KeptDemoSite(demo_serve=demo_etl._serve)
    folder: list[Path] = []

    def serve(directory: Path) -> _KeptServer:
        if site.server is None:
            handler = functools.partial(demo_etl._QuietHandler, directory=str(directory))
            site.server = _KeptServer(("127.0.0.1", 0), handler)
            threading.Thread(target=site.server.serve_forever, name="test-demo-site", daemon=True).start()
            folder.append(Path(directory))
        assert Path(directory) == folder[0], f"the demo served {directory}, the kept site serves {folder[0]}"
        site.crawls += 1
        return site.server

    monkeypatch.setattr(demo_etl, "_serve", serve)
    try:
        yield site
    finally:
        if site.server is not None:
            site.server.stop()
