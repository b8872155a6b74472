"""Write one partition per logical date. Overwrite, never append."""

from __future__ import annotations

import json
import os
import tempfile
from datetime import date
from pathlib import Path


def partition_path(root: str | Path, day: date) -> Path:
    """The single file that owns ``day``."""
    return Path(root) / f"dt={day.isoformat()}" / "part-000.jsonl"


def write_partition(records: list[dict], root: str | Path, day: date) -> Path:
    """Atomically replace the partition for ``day`` with ``records``.

    Records are sorted by ID so that running this twice with the same
    input leaves a byte-identical file.
    """
    target = partition_path(root, day)
    target.parent.mkdir(parents=True, exist_ok=True)
    ordered = sorted(records, key=lambda record: record["id"])
    fd, tmp_name = tempfile.mkstemp(dir=target.parent, suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            for record in ordered:
                handle.write(json.dumps(record, sort_keys=True, ensure_ascii=False))
                handle.write("\n")
        os.replace(tmp_name, target)
    except BaseException:
        if os.path.exists(tmp_name):
            os.remove(tmp_name)
        raise
    return target
