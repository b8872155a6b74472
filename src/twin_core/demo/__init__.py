"""`twin demo`'s stages, one module per pipeline stage (``stage(sample: Path) -> dict``), and the sample
corpus they run on.

The corpus ships inside the package (``sample/``, declared as package data in pyproject.toml), so the
demo finds it the same way from a source checkout, an editable install or a wheel in an image.
"""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path


def sample_dir() -> Path:
    """The packaged sample corpus: Handbook backup files, ``queries.jsonl``, ``site/``, ``repos/``."""
    return Path(str(files(__name__) / "sample"))
