"""Commands whose stage is not built yet: they say so and exit 5, never pretending to work."""

from __future__ import annotations

from collections.abc import Callable

import typer

from twin_core.cli.protocol import step
from twin_core.errors import NotYetAvailable

PLACEHOLDER_CONTEXT = {"ignore_unknown_options": True, "allow_extra_args": True}


def placeholder_command(name: str) -> Callable[..., None]:
    @step(name)
    def _not_available(args: list[str] = typer.Argument(None, hidden=True)) -> dict:
        raise NotYetAvailable(f"`twin {name}` is not yet available in this version")

    return _not_available
