"""Readable logs on stderr (rich when attached to a terminal, plain lines in pods and CI)."""

from __future__ import annotations

import logging
import os
import sys


def setup_logging(level: str | None = None) -> None:
    level = (level or os.environ.get("TWIN_LOG_LEVEL") or "INFO").upper()
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
    root.handlers[:] = [handler]
    root.setLevel(level)
    root._twin_configured = True  # type: ignore[attr-defined]
    # Quiet chatty libraries unless debugging.
    for noisy in ("httpx", "urllib3", "filelock", "sentence_transformers", "transformers", "botocore"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, root.level))


def progress(iterable=None, *, total: int | None = None, desc: str = "", unit: str = "it"):  # noqa: ANN001, ANN201
    """A tqdm progress bar on stderr; silent when TWIN_PROGRESS=0."""
    from tqdm.auto import tqdm

    disable = os.environ.get("TWIN_PROGRESS", "1") == "0"
    return tqdm(
        iterable,
        total=total,
        desc=desc,
        unit=unit,
        file=sys.stderr,
        disable=disable,
        dynamic_ncols=True,
        mininterval=0.5,
    )
