"""Deploy fixtures: helpers from tests/evaluation (registry/model folders) and tests/chart (rendering, schema)."""

from __future__ import annotations

import sys
from pathlib import Path

_TESTS = Path(__file__).resolve().parents[1]
for sub in ("evaluation", "chart", "deploy"):
    if str(_TESTS / sub) not in sys.path:
        sys.path.insert(0, str(_TESTS / sub))
