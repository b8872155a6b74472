"""A port of 127.0.0.1 where nothing listens, for the tests of a backend that is down.

A port found free and let go could be taken by another process at once (another test worker's server):
the test would then reach that process instead of a refused connection. ``refused_port()`` keeps the port
bound, never listening, for the whole block: connections to it are refused, and no other process can bind it.
Standard library only (the DAG tests import this package in the Airflow environment).
"""

from __future__ import annotations

import socket
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def refused_port() -> Iterator[int]:
    """``with refused_port() as port:`` connections to 127.0.0.1:``port`` are refused until the block ends."""
    with socket.socket() as sock:  # no SO_REUSEADDR: no other socket can bind the port while this one holds it
        sock.bind(("127.0.0.1", 0))
        yield sock.getsockname()[1]
