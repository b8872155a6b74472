"""The evaluation set of an author: the author's held-out documents (the instruct test split).

Splits are keyed on the document link, so every instruct version of an author holds out the same
documents: every candidate of the author (SFT or DPO, whatever dataset trained it) is judged on
these rows, and candidate and baseline answer the very same ones.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from twin_core.errors import InputError
from twin_core.settings import Settings

GATE_FLOOR = 2  # the fewest rows any evaluation runs on (gate.min_paired: an interval needs two)


@dataclass(frozen=True)
class EvalSet:
    dataset_version: str  # the instruct version the rows come from
    rows: list[dict[str, Any]]  # held-out rows with an instruction and the author's answer, by id

    @property
    def references(self) -> list[str]:
        return [str(r["answer"]) for r in self.rows]


def instruct_version(settings: Settings, author_slug: str, dataset_versions: list[str], model_ref: str = "") -> str:
    """The instruct version the candidate was trained on, else the author's latest one (DPO candidates).
    A version the candidate names that is gone is an InputError saying where the name came from."""
    from twin_core.datasets.versions import latest_version, load_dataset_version

    own = [v for v in dataset_versions if str(v).startswith(f"instruct/{author_slug}/")]
    if own:
        try:
            load_dataset_version(settings, str(own[0]))
        except InputError as exc:
            model = model_ref or "the candidate"
            raise InputError(f"{model} was trained on {own[0]} (its registry metadata): {exc}") from None
    found = own[0] if own else latest_version(settings, "instruct", author_slug)
    if found is None:
        raise InputError(f"{author_slug} has no instruct dataset: no held-out documents to evaluate on")
    return str(found)


def held_out_rows(settings: Settings, version_id: str) -> list[dict[str, Any]]:
    from twin_core.datasets.versions import load_dataset_version

    rows = load_dataset_version(settings, version_id).rows("test")  # unknown -> InputError
    rows = [r for r in rows if str(r.get("instruction") or "").strip() and str(r.get("answer") or "").strip()]
    return sorted(rows, key=lambda r: str(r.get("id", "")))


def load_eval_set(
    settings: Settings,
    version_id: str,
    min_rows: int,
    max_rows: int,
    *,
    min_from: str = "samples.min_rows",
    max_from: str = "samples.max_rows",
) -> EvalSet:
    """The held-out rows (at most ``max_rows``, 0 = all); InputError when fewer than ``min_rows`` (at least 1)
    remain after that cut: the gate never decides on fewer. ``min_from``/``max_from`` name where the two
    numbers came from (a config key and its file, or a CLI option). Never fewer than 2 rows: the gate
    decides on an interval of paired differences, which one row cannot give."""
    need = max(min_rows, GATE_FLOOR)
    if min_rows < GATE_FLOOR:
        min_from = f"the gate's floor: an interval needs {GATE_FLOOR} paired rows; {min_from} is {min_rows}"
    rows = held_out_rows(settings, version_id)
    if len(rows) < need:
        raise InputError(
            f"dataset {version_id} holds out {len(rows)} usable rows (an instruction and the author's answer); "
            f"the evaluation needs at least {need} ({min_from}): "
            f"rebuild the dataset with more held-out documents{', or lower min_rows' if need > GATE_FLOOR else ''}"
        )
    kept = rows[:max_rows] if max_rows > 0 else rows
    if len(kept) < need:
        raise InputError(
            f"max_rows {max_rows} ({max_from}) keeps {len(kept)} of the {len(rows)} held-out rows of dataset "
            f"{version_id}; "
            f"the evaluation needs at least {need} ({min_from}): raise max_rows (0 = all) or lower min_rows"
        )
    return EvalSet(version_id, kept)


def _prose(settings: Settings, version_id: str) -> dict[str, list[str]]:
    """The answers of each split, code left out (a chat answer is prose; code would pass for a voice)."""
    from twin_core.datasets.versions import load_dataset_version
    from twin_core.domain.documents import Category

    version = load_dataset_version(settings, version_id)
    code = Category.REPOSITORIES.value
    return {
        split: [
            str(r["answer"])
            for r in version.rows(split)
            if str(r.get("answer") or "").strip() and r.get("category") != code
        ]
        for split in ("train", "test")
    }


def authors_prose(settings: Settings, author_slug: str, version_id: str) -> dict[str, dict[str, list[str]]]:
    """Author slug -> {"train": prose, "test": held-out prose}: the author's from ``version_id``, every
    other author's from their latest instruct version. For attribution: fitted on train, checked on test."""
    from twin_core.datasets.versions import latest_version, list_versions

    versions = {author_slug: version_id}
    for slug in sorted({v.split("/")[1] for v in list_versions(settings, "instruct")} - {author_slug}):
        versions[slug] = str(latest_version(settings, "instruct", slug) or "")
    texts = {slug: _prose(settings, v) for slug, v in versions.items() if v}
    found = {slug: t for slug, t in texts.items() if t["train"]}
    return found if author_slug in found else {}  # no prose of the author: nothing to attribute to them
