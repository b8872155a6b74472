"""Demo stage ``validate.raw``: validate the warehouse the earlier stages filled."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def stage(sample: Path) -> dict[str, Any]:
    from twin_core.progress import progress
    from twin_core.settings import get_settings
    from twin_core.validation.raw import validate_raw

    result = validate_raw(get_settings(), progress=progress)
    return {
        "documents": result["documents"],
        "failed": result["failed"],
        "quarantined": [q["link"] for q in result["quarantined"]],
        "failure_ratio": result["failure_ratio"],
        "status": result.get("status", "ok"),
        "data_docs": result["data_docs"],
    }
