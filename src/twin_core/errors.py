"""Error types shared by every step. Each maps to one exit code of the `twin` CLI."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


class TwinError(Exception):
    """Base class: an expected failure with a message meant for the user."""

    exit_code = 1
    kind = "error"


class ConfigError(TwinError):
    """A missing or invalid setting (names the environment variable)."""

    exit_code = 2
    kind = "config"


class InputError(TwinError):
    """Bad input data: malformed file, unknown category, empty document..."""

    exit_code = 3
    kind = "input"


class BackendUnavailable(TwinError):
    """A store or service could not be reached (MongoDB, Qdrant, S3, an LLM endpoint)."""

    exit_code = 4
    kind = "unavailable"


@contextmanager
def writing_to(dest: Path | str, what: str) -> Iterator[None]:
    """An OSError while writing ``what`` under ``dest`` (a file where a folder should be, no permission, a full
    disk) as an InputError naming the path, instead of a traceback."""
    try:
        yield
    except OSError as exc:
        raise InputError(f"cannot write {what} to {dest}: {exc.strerror or exc}") from None
