"""``--author`` checked against the warehouse before a command runs: a typo is an error naming the known authors,
not an empty answer (a search without hits, a drift report for nobody, an empty model list)."""

from __future__ import annotations

from twin_core.settings import Settings


def require_author(settings: Settings, author: str | None) -> None:
    """Nothing when ``author`` is empty or names a warehouse author (full name in any case, slug or id); else
    ``features run``'s own error for an unknown author, naming the known ones."""
    if not author:
        return
    from twin_core.domain.ids import slugify
    from twin_core.features.pipeline import resolve_author
    from twin_core.stores.warehouse import open_warehouse

    warehouse = open_warehouse(settings)
    if warehouse.find_user(author) is not None or warehouse.get_user(author) is not None:
        return
    if any(slugify(u.full_name) == author for u in warehouse.users()):
        return
    resolve_author(warehouse, author)  # finds no one: its InputError "no author named … (known: …)"
