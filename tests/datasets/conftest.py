"""Dataset tests start from a feature store holding cleaned documents (the real cleaning code and the
real embedded Qdrant; no embedding needed, since datasets read only the cleaned_* collections)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from support.datasets import write_cleaned_docs


@pytest.fixture
def cleaned_home(settings: Any, warehouse: Any, sample_dir: Path) -> Any:
    """A TWIN_HOME whose feature store has the sample corpus's cleaned documents."""
    from twin_core.domain.documents import Category
    from twin_core.stores.warehouse_io import import_paths

    import_paths(warehouse, [sample_dir])
    docs = [d for c in Category for d in warehouse.iter_documents(c)]
    write_cleaned_docs(settings, docs)
    return settings
