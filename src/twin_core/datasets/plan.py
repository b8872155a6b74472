"""The types of a dataset build's three phases (``build.py`` plans and runs, ``record.py`` records): what a
build will do, what it produced, and what it returns per author."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from twin_core.datasets.extracts import Extract
from twin_core.settings import DatasetSettings

BUILD_VERSION = "datasets-v3"  # bump when the build logic changes what a version contains
Row = dict[str, Any]
PAIR_KINDS = ("model", "other_author")


@dataclass
class BuildOptions:
    strategy: str = "extractive"
    seed: int = 42
    max_extracts: int = 0  # 0 = all
    max_rejected: int = 32  # preference candidates per author
    # which pairs the candidates give: "model" (a generated, length-matched answer: one model call each)
    # and "other_author" (the nearest passage of another author: no model call)
    pair_kinds: tuple[str, ...] = PAIR_KINDS
    # the evaluation's samples.min_rows (the CLI reads it: datasets does not import evaluation); fewer held-out
    # rows warn. Not a build input: it changes no row and no hash.
    min_held_out: int | None = None


@dataclass
class AuthorBuild:
    author: str
    slug: str
    versions: dict[str, str] = field(default_factory=dict)  # kind -> version id
    created: dict[str, bool] = field(default_factory=dict)
    stats: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {
            "author": self.author,
            "author_slug": self.slug,
            "versions": self.versions,
            "created": self.created,
            **self.stats,
        }


@dataclass(frozen=True)
class BuildPlan:
    """What a build will do, decided from its inputs alone."""

    author: str
    slug: str
    opts: BuildOptions
    datasets: DatasetSettings
    hashes: dict[str, str]  # kind -> content hash of what decides its rows (``kind_hashes``)
    extracts: list[Extract]
    documents: list[dict[str, str]]  # lineage: id, content hash, link
    needs_model: bool
    boilerplate: frozenset[str] = frozenset()  # lines recurring across the author's documents
    context_tokens: int = 1024  # budget of each row's retrieved context
    build_version: str = BUILD_VERSION


@dataclass
class BuiltRows:
    """What ``run_build`` produced, before validation."""

    instruct: list[Row]
    preference: list[Row]
    forms: Counter
    report: dict[str, Any]
    pairs: dict[str, Any] = field(default_factory=dict)
    model_version: str | None = None
    llm_calls: int = 0
    llm_cache_hits: int = 0
