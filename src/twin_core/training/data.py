"""Dataset versions -> training rows (sorted, usable ones only).

Rows become chat examples through ``twin_core.llm.rows`` (the prompt of serving), shared with evaluation.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from twin_core.errors import InputError
from twin_core.settings import Settings


@dataclass
class TrainingData:
    version_id: str
    kind: str  # "instruct" | "preference"
    author: str
    author_slug: str
    train: list[dict[str, Any]]
    test: list[dict[str, Any]]
    metadata: dict[str, Any] = field(default_factory=dict)


def load_training_data(settings: Settings, version_id: str, kind: str) -> TrainingData:
    """Rows of a dataset version (CONTRACTS §2), sorted by id so every run sees the same data order."""
    from twin_core.datasets.versions import load_dataset_version

    version = load_dataset_version(settings, version_id)  # unknown -> InputError
    if version.kind != kind:
        raise InputError(f"dataset {version_id} is a {version.kind} dataset; this step needs a {kind} dataset")
    train = sorted(version.rows("train"), key=lambda r: str(r.get("id", "")))
    test = sorted(version.rows("test"), key=lambda r: str(r.get("id", "")))
    needed = ("instruction", "answer") if kind == "instruct" else ("instruction", "chosen", "rejected")
    train = [r for r in train if all(str(r.get(k) or "").strip() for k in needed)]
    test = [r for r in test if all(str(r.get(k) or "").strip() for k in needed)]
    if not train:
        raise InputError(f"dataset {version_id} has no usable training rows (needs {', '.join(needed)})")
    return TrainingData(
        version_id=version.version_id,
        kind=kind,
        author=version.author,
        author_slug=version.author_slug,
        train=train,
        test=test,
        metadata=dict(version.metadata),
    )


def dataset_versions(settings: Settings, kind: str) -> list[str]:
    """The newest ``kind`` dataset version of every author (``<kind>/<slug>/vNNNN``)."""
    from twin_core.datasets.versions import latest_version, list_versions

    slugs = sorted({v.split("/")[1] for v in list_versions(settings, kind)})
    return [v for v in (latest_version(settings, kind, slug) for slug in slugs) if v]
