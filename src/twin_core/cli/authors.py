"""``--author`` checked against the warehouse before a command runs: a typo is an error naming the known authors,
not an empty answer (a search without hits, a drift report for nobody, an empty model list)."""

from __future__ import annotations

from twin_core.errors import InputError
from twin_core.settings import Settings


def require_author(settings: Settings, author: str | None) -> None:
    """Nothing when ``author`` is empty or names a warehouse author (full name in any case, slug or id)."""
    if not author:
        return
    from twin_core.domain.ids import slugify
    from twin_core.stores.warehouse import open_warehouse

    warehouse = open_warehouse(settings)
    if warehouse.find_user(author) is not None or warehouse.get_user(author) is not None:
        return
    users = warehouse.users()
    if any(slugify(u.full_name) == author for u in users):
        return
    known = ", ".join(sorted(u.full_name for u in users)) or "none"
    raise InputError(f"no author named {author!r} in the warehouse (known: {known})")
