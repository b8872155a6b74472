"""Progress bars, at the floor of the package so any stage can take one.

A stage never decides on its own to draw a bar: it takes a ``progress`` factory (default ``silent``)
and the caller injects ``progress`` (a tqdm bar on stderr) when a person is watching, as the CLI does.
Both factories have the same signature and return an object with ``update``, ``close`` and iteration.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Iterable, Iterator
from typing import Any

ProgressFactory = Callable[..., Any]


def bars_enabled() -> bool:
    return os.environ.get("TWIN_PROGRESS", "1") != "0"


def quiet_library_bars() -> None:
    """With TWIN_PROGRESS=0, the libraries' own bars (Hugging Face downloads, transformers' "Loading weights")
    are off too. Called before they are imported: huggingface_hub reads the variable once, and transformers
    follows it."""
    if not bars_enabled():
        os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")


def progress(
    iterable: Iterable[Any] | None = None, *, total: int | None = None, desc: str = "", unit: str = "it"
) -> Any:
    """A tqdm progress bar on stderr; silent when TWIN_PROGRESS=0 (see also :func:`quiet_library_bars`)."""
    from tqdm.auto import tqdm

    disable = not bars_enabled()
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


class _Silent:
    def __init__(self, iterable: Iterable[Any] | None) -> None:
        self.iterable = iterable

    def __iter__(self) -> Iterator[Any]:
        return iter(self.iterable if self.iterable is not None else ())

    def update(self, n: int = 1) -> None:
        pass

    def close(self) -> None:
        pass


def silent(iterable: Iterable[Any] | None = None, *, total: int | None = None, desc: str = "", unit: str = "it") -> Any:
    """Same interface as :func:`progress`, draws nothing: the default of every stage."""
    return _Silent(iterable)
