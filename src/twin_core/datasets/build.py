"""`twin datasets build`: cleaned documents -> instruction and preference dataset versions.

Order matters for safety: everything is computed first (LLM calls cached as they go), validated,
then each dataset is written as one artifact version whose metadata is written last. A killed build
leaves no half version; a re-run on an unchanged corpus returns the existing versions (content hash of
every input) without calling any model.
"""

from __future__ import annotations

import hashlib
import logging
import random
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from twin_core.datasets import checks, quality
from twin_core.datasets.extracts import Extract, cut
from twin_core.datasets.generate import GENERATION_PROMPT_VERSION, CachedLLM
from twin_core.datasets.instructions import write_instruction
from twin_core.datasets.splits import assign_splits, link_key
from twin_core.datasets.versions import artifact_name, to_parquet
from twin_core.domain.documents import Category
from twin_core.domain.features import CleanedDocument
from twin_core.domain.ids import content_hash, slugify, user_id
from twin_core.errors import ConfigError, InputError
from twin_core.llm.base import LLMBackend
from twin_core.llm.prompt import PROMPT_VERSION
from twin_core.progress import ProgressFactory, silent
from twin_core.settings import Settings

log = logging.getLogger(__name__)
BUILD_VERSION = "datasets-v2"  # bump when the build logic changes what a version contains


@dataclass
class BuildOptions:
    strategy: str = "extractive"
    seed: int = 42
    max_extracts: int = 0  # 0 = all
    max_rejected: int = 32


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


def read_cleaned(settings: Settings, author: str) -> list[CleanedDocument]:
    """The author's cleaned documents from the feature store, in link order (the link key, not the id:
    the order decides which copy of a duplicate text is kept)."""
    from twin_core.features.feature_store import cleaned_collection
    from twin_core.stores.vectors import open_vector_store

    store = open_vector_store(settings)
    try:
        docs = []
        for category in Category:
            for point in store.scroll(cleaned_collection(category), author_id=user_id(author)):
                payload = dict(point.payload)
                payload["id"] = payload.pop("document_id", str(point.id))
                docs.append(CleanedDocument.model_validate(payload))
        return sorted(docs, key=lambda d: (link_key(d.link), d.id))
    finally:
        store.close()


def _snapshot_hash(docs: list[CleanedDocument], settings: Settings, opts: BuildOptions, model: str | None) -> str:
    ds = settings.datasets
    return content_hash(
        {
            "documents": [[d.id, content_hash(d.content)] for d in docs],
            "build": BUILD_VERSION,
            "strategy": opts.strategy,
            "seed": opts.seed,
            "max_extracts": opts.max_extracts,
            "max_rejected": opts.max_rejected,
            "model": model,
            "prompt": [PROMPT_VERSION, GENERATION_PROMPT_VERSION],
            "settings": ds.model_dump(mode="json", exclude={"strategy", "seed", "max_extracts", "max_rejected"}),
        }
    )


def _sample(extracts: list[Extract], seed: int, limit: int) -> list[Extract]:
    if not limit or len(extracts) <= limit:
        return extracts
    rng = random.Random(seed)
    picked = rng.sample(range(len(extracts)), limit)
    return [extracts[i] for i in sorted(picked)]


def _row_id(kind: str, *parts: str) -> str:
    return hashlib.sha256("|".join((kind, *parts)).encode()).hexdigest()[:32]


def _instruct_rows(
    extracts: list[Extract], opts: BuildOptions, gen: CachedLLM | None, progress: ProgressFactory
) -> tuple[list[dict[str, Any]], Counter, Counter]:
    rows: list[dict[str, Any]] = []
    forms: Counter = Counter()
    dropped: Counter = Counter()
    for ex in progress(extracts, desc=f"instructions ({opts.strategy})", unit="extract"):
        base = {"document_id": ex.document_id, "category": ex.category, "link": ex.link}
        if opts.strategy == "llm":
            if gen is None:
                raise ConfigError("the llm strategy needs a model (TWIN_LLM_BACKEND / TWIN_LLM_BASE_URL)")
            try:
                pairs = gen.pairs(ex)
            except ValueError as exc:
                dropped["malformed_reply"] += 1
                log.warning("extract %s/%d dropped: %s", ex.document_id, ex.index, exc)
                continue
            for p in pairs:
                rows.append(
                    {
                        "id": _row_id("i", ex.hash, p.instruction),
                        "instruction": p.instruction.strip(),
                        "answer": p.answer.strip(),
                        **base,
                    }
                )
            forms["llm"] += len(pairs)
        else:
            form, instruction = write_instruction(ex, opts.seed)
            forms[form] += 1
            rows.append(
                {"id": _row_id("i", ex.hash, instruction), "instruction": instruction, "answer": ex.text, **base}
            )
    return rows, forms, dropped


def _token_stats(rows: list[dict[str, Any]], key: str) -> dict[str, Any]:
    lengths = sorted(max(1, len(r[key]) // 4) for r in rows)  # ~4 characters per token (no tokenizer needed)
    if not lengths:
        return {"count": 0}
    return {
        "count": len(lengths),
        "total": sum(lengths),
        "mean": round(sum(lengths) / len(lengths), 1),
        "max": lengths[-1],
        "estimate": "chars/4",
    }


def _split_counts(rows: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "splits": dict(Counter(r["split"] for r in rows)),
        "categories": {s: dict(Counter(r["category"] for r in rows if r["split"] == s)) for s in ("train", "test")},
    }


def _validated(
    kind: str, rows: list[dict[str, Any]], settings: Settings, store: Any, prefix: str
) -> tuple[list, list, str]:
    logging.getLogger("great_expectations").setLevel(logging.WARNING)  # its INFO lines drown the task log
    reasons, context, _ = checks.validate(kind, rows, min_answer_chars=settings.datasets.min_answer_chars)
    from twin_core.validation.gx_results import publish_data_docs

    docs = publish_data_docs(context, store, prefix)
    kept = [r for r in rows if r["id"] not in reasons]
    rejected = [{**r, "reasons": reasons[r["id"]]} for r in rows if r["id"] in reasons]
    return kept, rejected, docs


def build_author(
    settings: Settings,
    author: str,
    opts: BuildOptions,
    *,
    open_model: Any = None,
    progress: ProgressFactory = silent,
) -> AuthorBuild:
    """Build (or find) both dataset versions of ``author``. ``open_model()`` -> (LLMBackend, version) is
    called only when a model is needed (LLM strategy, rejected answers)."""
    from twin_core.stores.artifacts import open_artifact_store

    ds = settings.datasets
    slug = slugify(author)
    result = AuthorBuild(author, slug)
    docs = read_cleaned(settings, author)
    if not docs:
        raise InputError(f"author {author!r} has no cleaned documents in the feature store (run `twin features run`)")
    store = open_artifact_store(settings)
    model_label = getattr(open_model, "label", None)
    snapshot = _snapshot_hash(docs, settings, opts, model_label)
    existing = _existing(store, slug, snapshot, want_preference=bool(opts.max_rejected))
    if existing:
        result.versions = existing
        result.created = {k: False for k in existing}
        result.stats = {"unchanged": True}
        return result

    extracts = _sample([e for d in docs for e in cut(d)], opts.seed, opts.max_extracts)
    if not extracts:
        raise InputError(f"author {author!r}: the cleaned documents give no extract")
    llm: LLMBackend | None = None
    gen: CachedLLM | None = None
    if opts.strategy == "llm" or opts.max_rejected:
        llm = open_model() if open_model else None
        gen = CachedLLM(llm, store) if llm else None
    rows, forms, dropped = _instruct_rows(extracts, opts, gen, progress)
    report: dict[str, Any] = {"dropped": dict(dropped)}
    rows, removed = quality.filter_rows(
        rows, text_key="answer", min_chars=ds.min_answer_chars, max_chars=ds.max_answer_chars, language=ds.language
    )
    report["filters"] = dict(removed)
    rows, removed = quality.deduplicate(rows, text_key="answer", jaccard=ds.near_duplicate_jaccard)
    report["deduplication"] = dict(removed)
    assign_splits(rows, ds.test_percent, ds.min_test_rows)
    rows, removed = quality.decontaminate(rows, text_keys=("instruction", "answer"), n=ds.decontamination_ngram)
    report["decontamination"] = dict(removed)
    if not rows:
        raise InputError(f"author {author!r}: every sample was filtered out ({report})")

    pref_rows = _preference_rows(rows, author, opts, gen, ds.rejected_max_new_tokens, progress)
    lineage = {
        "documents": [{"id": d.id, "content_hash": content_hash(d.content), "link": d.link} for d in docs],
        "snapshot_hash": snapshot,
    }
    common = {
        "author": author,
        "author_slug": slug,
        "content_hash": snapshot,
        "strategy": opts.strategy,
        "seed": opts.seed,
        "model": (llm.model_version if llm else None),
        "prompt_version": PROMPT_VERSION,
        "generation_prompt_version": GENERATION_PROMPT_VERSION,
        "build_version": BUILD_VERSION,
        "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "lineage": lineage,
        "extracts": len(extracts),
        "llm_calls": gen.calls if gen else 0,
        "llm_cache_hits": gen.hits if gen else 0,
    }
    total_forms = sum(forms.values())
    stats_instruct = {
        "filters": report,
        "instruction_forms": dict(forms),
        "forms_used": len(forms),
        "largest_form_share": round(max(forms.values()) / total_forms, 4) if total_forms else 0.0,
        "distinct_instruction_share": round(len({r["instruction"] for r in rows}) / len(rows), 4),
        "tokens": {"instruction": _token_stats(rows, "instruction"), "answer": _token_stats(rows, "answer")},
    }
    for kind, kind_rows, extra in (("instruct", rows, stats_instruct), ("preference", pref_rows, {})):
        if not kind_rows:
            result.stats[kind] = {"skipped": "no rows"}
            continue
        name = artifact_name(kind, slug)
        kept, rejected, docs_uri = _validated(kind, kind_rows, settings, store, f"{name}/data_docs/{snapshot[:16]}")
        files: dict[str, bytes] = {
            f"{s}.parquet": to_parquet([r for r in kept if r["split"] == s]) for s in ("train", "test")
        }
        if rejected:
            files["rejected.parquet"] = to_parquet(rejected)
        meta = {
            **common,
            "kind": kind,
            **extra,
            **_split_counts(kept),
            "validation": {"rejected": len(rejected), "data_docs": docs_uri},
        }
        before = store.versions(name)
        av = store.put_version(name, files, meta)
        result.versions[kind] = f"{kind}/{slug}/{av.version}"
        result.created[kind] = av.version not in before
        result.stats[kind] = {"rows": len(kept), **_split_counts(kept), "rejected_by_validation": len(rejected)}
    result.stats["filters"] = report
    for key in ("forms_used", "largest_form_share", "distinct_instruction_share"):
        result.stats[key] = stats_instruct[key]
    result.stats["llm_calls"] = gen.calls if gen else 0
    return result


def _existing(store: Any, slug: str, snapshot: str, want_preference: bool) -> dict[str, str]:
    """The newest versions if they were built from this very snapshot (the preference one only if wanted)."""
    found: dict[str, str] = {}
    for kind in ("instruct", "preference") if want_preference else ("instruct",):
        name = artifact_name(kind, slug)
        versions = store.versions(name)
        if not versions or store.get_version(name, versions[-1]).metadata.get("content_hash") != snapshot:
            return {}
        found[kind] = f"{kind}/{slug}/{versions[-1]}"
    return found


def _preference_rows(
    rows: list[dict[str, Any]],
    author: str,
    opts: BuildOptions,
    gen: CachedLLM | None,
    max_new_tokens: int,
    progress: ProgressFactory,
) -> list[dict[str, Any]]:
    """chosen = the author's verbatim text (≥ 100 chars, whole sentences); rejected = the model's answer."""
    if gen is None or not opts.max_rejected:
        return []
    candidates = _pair_candidates(rows, opts.max_rejected)
    answers = gen.rejected([r["instruction"] for r, _ in candidates], author, max_new_tokens, progress=progress)
    out = []
    for r, chosen in candidates:
        rejected = answers[r["instruction"]].strip()
        if not rejected or rejected == chosen:
            continue
        out.append(
            {
                "id": _row_id("p", r["id"]),
                "instruction": r["instruction"],
                "chosen": chosen,
                "rejected": rejected,
                "document_id": r["document_id"],
                "category": r["category"],
                "link": r["link"],
                "split": r["split"],
            }
        )
    return out


def _pair_candidates(rows: list[dict[str, Any]], limit: int) -> list[tuple[dict[str, Any], str]]:
    """Up to ``limit`` (row, chosen text) with ≥ 100 characters, both splits represented in proportion
    (at least one held-out pair when there is one), so a preference version never has an empty test split."""
    usable: dict[str, list[tuple[dict[str, Any], str]]] = {"train": [], "test": []}
    for r in rows:
        chosen = r["answer"] if r["category"] == "repositories" else quality.whole_sentences(r["answer"])
        if len(chosen) >= 100:
            usable[r["split"]].append((r, chosen))
    total = len(usable["train"]) + len(usable["test"])
    if total <= limit:
        return usable["train"] + usable["test"]
    n_test = min(len(usable["test"]), max(1, round(limit * len(usable["test"]) / total))) if limit > 1 else 0
    train = usable["train"][: limit - n_test]
    return train + usable["test"][: limit - len(train)]
