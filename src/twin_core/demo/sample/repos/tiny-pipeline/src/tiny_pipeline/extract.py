"""Read raw records from a JSON Lines file."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Iterator


def read_records(path: str | Path) -> Iterator[dict]:
    """Yield one dict per non-empty line.

    A broken line raises ValueError with the file name and line number,
    because "invalid JSON somewhere" is not an error message.
    """
    with open(path, encoding="utf-8") as handle:
        for number, line in enumerate(handle, start=1):
            line = line.strip()
            if not line:
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as exc:
                raise ValueError(f"{path}:{number}: invalid JSON ({exc.msg})") from exc
            if not isinstance(record, dict):
                raise ValueError(f"{path}:{number}: expected a JSON object")
            yield record
