"""Leave the process with the command's own exit code once Python's shutdown is done.

Native thread pools (Arrow's, apache/arrow#34314; others alike) torn down after Python's shutdown, at module
teardown or by C++ static destructors, can abort a finished step: "terminate called without an active
exception", exit -6, after its result line was printed. Airflow would then fail a step that succeeded, or
lose the exit code (2 config, 3 bad input, 4 retryable) of one that failed. So the ``twin`` entry point
registers ``leave_now`` first: Python runs atexit hooks last-registered-first, so it runs after every other
hook (Comet's, temporary folders', the libraries'), once non-daemon threads are joined, and then ends the
process with ``os._exit`` and the code the command exited with, skipping only the native teardown.
"""

from __future__ import annotations

import atexit
import contextlib
import logging
import os
import sys
from collections.abc import Callable

_status: list[int] = []


def exit_code(exc: BaseException) -> int:
    """The process's exit code for what ended ``main``: SystemExit's code (None 0, a message 1), 130 for
    Ctrl-C, 1 for an uncaught error (Python prints its traceback before the atexit hooks run)."""
    if isinstance(exc, SystemExit):
        return exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    return 130 if isinstance(exc, KeyboardInterrupt) else 1


def run_then_leave(entry: Callable[[], None]) -> None:
    """Run ``entry`` (the CLI), remember how it ended, and have ``leave_now`` end the process with that code."""
    atexit.register(leave_now)
    try:
        entry()
    except BaseException as exc:  # SystemExit included: every ending has a code
        _status.append(exit_code(exc))
        raise
    _status.append(0)


def leave_now() -> None:
    """The last atexit hook: flush what was written, then leave with the command's code."""
    if not _status:
        return  # not ended through run_then_leave (an import, a test): Python's own exit
    logging.shutdown()
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(OSError, ValueError):  # a closed pipe: nothing more to say
            stream.flush()
    os._exit(_status[-1])
