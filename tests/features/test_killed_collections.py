"""A run killed while it creates the feature store's collections: the next run completes them."""

from __future__ import annotations

from typing import Any

import pytest

from twin_core.stores.vectors import PAYLOAD_INDEXES, open_vector_store


def test_payload_indexes_left_out_by_a_killed_run_are_created_by_the_next(
    settings: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = open_vector_store(settings)
    try:
        real = store.client.create_payload_index
        made: list[str] = []

        def killed(name: str, field_name: str, *args: Any, **kwargs: Any) -> Any:
            raise KeyboardInterrupt("killed after the collection, before its indexes")

        monkeypatch.setattr(store.client, "create_payload_index", killed)
        with pytest.raises(KeyboardInterrupt):
            store.ensure_collection("embedded_articles", 4, metadata={"kind": "embedded"})
        assert store.has_collection("embedded_articles")

        def recorded(name: str, field_name: str, *args: Any, **kwargs: Any) -> Any:
            made.append(field_name)
            return real(name, field_name, *args, **kwargs)

        monkeypatch.setattr(store.client, "create_payload_index", recorded)
        store.ensure_collection("embedded_articles", 4, metadata={"kind": "embedded"})
        assert sorted(made) == sorted(PAYLOAD_INDEXES)  # the embedded mode keeps none: all are asked again
    finally:
        store.close()
