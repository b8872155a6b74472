"""What a failed `twin` command must look like (tests/conftest.py's `twin` fixture runs it)."""

from __future__ import annotations

from typing import Any


def one_error_line(run: Any, code: int, kind: str, step: str) -> str:
    """The run exited ``code`` with one JSON error line of ``kind`` for ``step`` on stdout and no traceback;
    returns its error message."""
    assert run.returncode == code, run.stderr[-2000:]
    assert len(run.stdout.splitlines()) == 1, run.stdout
    assert "Traceback" not in run.stderr
    assert (run.result["status"], run.result["kind"], run.result["step"]) == ("error", kind, step)
    return run.result["error"]
