"""The step result protocol shared by every `twin` command.

- Logs and progress bars go to stderr; stdout holds **exactly one line, one JSON object**: the step
  result. While a command body runs, whatever writes to stdout (a ``print``, a library, a child
  process writing to file descriptor 1) is sent to stderr, so no command can break ``twin … | jq``.
- In a pod (or wherever ``TWIN_XCOM_PATH`` / the default ``/airflow/xcom/`` exists) the same JSON
  is written to ``return.json`` so KubernetesPodOperator pushes it as the task's XCom.
- Exit codes: 0 ok, 1 unexpected, 2 config (and a malformed command line), 3 bad input, 4 backend
  unavailable.
"""

from __future__ import annotations

import contextlib
import functools
import json
import logging
import os
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

from twin_core.errors import TwinError

log = logging.getLogger("twin")
F = TypeVar("F", bound=Callable[..., Any])

DEFAULT_XCOM_PATH = Path("/airflow/xcom/return.json")


def _xcom_path() -> Path | None:
    explicit = os.environ.get("TWIN_XCOM_PATH")
    if explicit:
        return Path(explicit)
    return DEFAULT_XCOM_PATH if DEFAULT_XCOM_PATH.parent.is_dir() else None


def emit_result(result: dict[str, Any]) -> None:
    """Print the result as the last stdout line, and write the XCom file when in a pod."""
    line = json.dumps(result, sort_keys=True, default=str, ensure_ascii=False)
    sys.stderr.flush()
    print(line, flush=True)
    path = _xcom_path()
    if path is not None:
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(line)
        except OSError as exc:
            log.warning("could not write XCom result to %s: %s", path, exc)


@contextlib.contextmanager
def stdout_to_stderr() -> Iterator[None]:
    """Send stdout to stderr meanwhile: Python writes and, where stdout is a real file, descriptor 1 too
    (native libraries, child processes). The result line is printed after, on the real stdout."""
    sys.stdout.flush()
    try:
        out_fd, err_fd = sys.stdout.fileno(), sys.stderr.fileno()
    except (AttributeError, OSError, ValueError):  # an in-memory stdout (tests' CliRunner)
        out_fd = err_fd = -1
    saved = os.dup(out_fd) if out_fd >= 0 and out_fd != err_fd else -1
    if saved >= 0:
        os.dup2(err_fd, out_fd)
    try:
        with contextlib.redirect_stdout(sys.stderr):
            yield
    finally:
        sys.stderr.flush()
        if saved >= 0:
            os.dup2(saved, out_fd)
            os.close(saved)


def error_result(name: str, error: str, kind: str, started: float | None = None) -> dict[str, Any]:
    result = {"step": name, "status": "error", "error": error, "kind": kind}
    if started is not None:
        result["seconds"] = round(time.perf_counter() - started, 3)
    return result


def step(name: str) -> Callable[[F], F]:
    """Decorate a command body returning a dict: adds status, step name, timing and error handling."""

    def decorator(fn: F) -> F:
        @functools.wraps(fn)
        def wrapper(*args: Any, **kwargs: Any) -> None:
            started = time.perf_counter()
            try:
                with stdout_to_stderr():
                    result = fn(*args, **kwargs) or {}
            except TwinError as exc:
                log.error("%s: %s", name, exc)
                emit_result(error_result(name, str(exc), exc.kind, started))
                raise SystemExit(exc.exit_code) from None
            except KeyboardInterrupt:
                emit_result(error_result(name, "interrupted", "interrupted"))
                raise SystemExit(130) from None
            except Exception as exc:
                log.exception("%s failed unexpectedly", name)
                emit_result(error_result(name, f"{type(exc).__name__}: {exc}", "unexpected", started))
                raise SystemExit(1) from None
            status = result.pop("status", "ok")
            emit_result({"step": name, "status": status, **result, "seconds": round(time.perf_counter() - started, 3)})
            if status not in ("ok", "unchanged"):
                raise SystemExit(result.get("exit_code", 3))

        wrapper.twin_step = name  # type: ignore[attr-defined]  # a usage error's JSON line names the step too
        return wrapper  # type: ignore[return-value]

    return decorator
