"""Readable logs on stderr (rich when attached to a terminal, plain lines in pods and CI).

Progress bars are not here: they sit at the floor, in ``twin_core.progress``.
"""

from __future__ import annotations

import logging
import os
import sys

LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")  # as Settings.log_level (TWIN_LOG_LEVEL) accepts them
# Libraries that log their internals at INFO (great_expectations: ~200 lines per `twin validate raw`; absl:
# "Using default tokenizer." once per ROUGE scorer).
NOISY = (
    "httpx", "urllib3", "filelock", "sentence_transformers", "transformers", "botocore", "great_expectations", "absl",
)  # fmt: skip


def check_level(level: str | None) -> str:
    """The level's name in upper case (INFO when unset); ValueError naming the valid ones otherwise."""
    name = (level or "INFO").strip().upper()
    if name not in LEVELS:
        raise ValueError(f"{level!r} is not a log level: expected one of {', '.join(LEVELS)}")
    return name


def _not_library_chatter(record: logging.LogRecord) -> bool:
    """Drops a chatty library's records below WARNING, also from loggers that set their own level
    (great_expectations' data_context.types.base sets INFO on its logger, absl on its own)."""
    if record.levelno >= logging.WARNING:
        return True
    return record.name not in NOISY and not record.name.startswith(tuple(f"{n}." for n in NOISY))


def setup_logging(level: str | None = None) -> None:
    level = check_level(level or os.environ.get("TWIN_LOG_LEVEL"))
    root = logging.getLogger()
    if getattr(root, "_twin_configured", False):
        root.setLevel(level)
        return
    if sys.stderr.isatty():
        from rich.logging import RichHandler

        handler: logging.Handler = RichHandler(show_path=False, rich_tracebacks=True)
        handler.setFormatter(logging.Formatter("%(message)s", datefmt="%X"))
    else:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    handler.addFilter(_not_library_chatter)
    root.handlers[:] = [handler]
    root.setLevel(level)
    root._twin_configured = True  # type: ignore[attr-defined]
    # Quiet chatty libraries unless debugging.
    for noisy in NOISY:
        logging.getLogger(noisy).setLevel(max(logging.WARNING, root.level))
