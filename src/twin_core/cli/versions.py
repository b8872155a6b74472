"""A model version given on the command line, checked before a command runs: an unknown one is an error naming
the option or argument it came from and the author's versions, not the registry's bare "unknown model version"."""

from __future__ import annotations

from typing import Any


def known_version(reg: Any, ref: str, name: str) -> Any:
    """The version ``ref`` given as ``name`` (an option or argument); unknown: named, with the author's versions.

    A malformed ref keeps the registry's own message (the form expected).
    """
    from twin_core.errors import InputError
    from twin_core.stores.registry import parse_ref

    try:
        return reg.get(ref)
    except InputError:
        slug, version = parse_ref(ref)
        known = [mv.version for mv in reg.list(slug)]
        if version in known:  # not a missing version: the registry's own error stands
            raise
        there = f"model versions of {slug}: {', '.join(known)}" if known else f"no model version of {slug} yet"
        raise InputError(
            f"{name} {ref!r}: unknown model version {slug}/{version} ({there}; see `twin registry list`)"
        ) from None
