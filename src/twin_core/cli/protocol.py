"""The step result protocol shared by every `twin` command.

- Logs and progress bars go to stderr; stdout's **last line is one JSON object**, the step result.
- In a pod (or wherever ``TWIN_XCOM_PATH`` / the default ``/airflow/xcom/`` exists) the same JSON
  is written to ``return.json`` so KubernetesPodOperator pushes it as the task's XCom.
- Exit codes: 0 ok, 1 unexpected, 2 config, 3 bad input, 4 backend unavailable, 5 not available yet.
"""

from __future__ import annotations

import functools
import json
import logging
import os
import sys
import time
from collections.abc import Callable
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


def step(name: str) -> Callable[[F], F]:
    """Decorate a command body returning a dict: adds status, step name, timing and error handling."""

    def decorator(fn: F) -> F:
        @functools.wraps(fn)
        def wrapper(*args: Any, **kwargs: Any) -> None:
            started = time.perf_counter()
            try:
                result = fn(*args, **kwargs) or {}
            except TwinError as exc:
                log.error("%s: %s", name, exc)
                emit_result(
                    {
                        "step": name,
                        "status": "error",
                        "error": str(exc),
                        "kind": exc.kind,
                        "seconds": round(time.perf_counter() - started, 3),
                    }
                )
                raise SystemExit(exc.exit_code) from None
            except KeyboardInterrupt:
                emit_result({"step": name, "status": "error", "error": "interrupted", "kind": "interrupted"})
                raise SystemExit(130) from None
            except Exception as exc:
                log.exception("%s failed unexpectedly", name)
                emit_result(
                    {
                        "step": name,
                        "status": "error",
                        "error": f"{type(exc).__name__}: {exc}",
                        "kind": "unexpected",
                        "seconds": round(time.perf_counter() - started, 3),
                    }
                )
                raise SystemExit(1) from None
            status = result.pop("status", "ok")
            emit_result({"step": name, "status": status, **result, "seconds": round(time.perf_counter() - started, 3)})
            if status not in ("ok", "unchanged"):
                raise SystemExit(result.get("exit_code", 3))

        return wrapper  # type: ignore[return-value]

    return decorator
