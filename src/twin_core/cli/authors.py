"""``--author`` checked against the warehouse before a command runs: a typo is an error naming the known authors,
not an empty answer (a search without hits, a drift report for nobody, an empty model list)."""

from __future__ import annotations

from twin_core.settings import Settings


def require_author(settings: Settings, author: str | None) -> str | None:
    """The stored full name of the warehouse author ``author`` names (full name in any case, slug or id), None
    when it is empty; else ``features run``'s own error for an unknown author, naming the known ones. Commands
    pass the full name on: searches and builds key their data on it, so a slug passed through matches nothing."""
    if not author:
        return None
    from twin_core.features.pipeline import resolve_author
    from twin_core.stores.warehouse import open_warehouse

    warehouse = open_warehouse(settings)
    user = warehouse.get_user(resolve_author(warehouse, author))  # unknown: InputError "no author named …"
    return user.full_name if user else author
