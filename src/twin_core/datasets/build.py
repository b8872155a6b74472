"""`twin datasets build`: cleaned documents -> instruction and preference dataset versions.

Three phases: ``plan_build`` (pure: the extracts, the content hash of each kind from only what decides its
rows, whether a model is needed), ``run_build`` (rows, filters, split, decontamination, pairs; LLM calls
cached as they go) and ``record_build`` (``record.py``: validation, then one artifact version per kind whose
metadata is written last); their types are in ``plan.py``. A killed build leaves no half version; a build
whose kind hash matches the newest version of that kind and author returns that version (``created`` false)
instead of a byte-identical copy, and when every wanted kind matches, without calling any model.
"""

from __future__ import annotations

import logging
import random
from typing import Any

from twin_core.datasets import pairs, quality, rows
from twin_core.datasets.extracts import Extract, cut
from twin_core.datasets.generate import GENERATION_PROMPT_VERSION, CachedLLM
from twin_core.datasets.plan import (
    BUILD_VERSION,
    AuthorBuild,
    BuildOptions,
    BuildPlan,
    BuiltRows,
    Row,
)
from twin_core.datasets.splits import assign_splits, link_key
from twin_core.domain.documents import Category
from twin_core.domain.features import CleanedDocument
from twin_core.domain.ids import content_hash, slugify, user_id
from twin_core.errors import InputError
from twin_core.llm.prompt import PROMPT_VERSION
from twin_core.progress import ProgressFactory, silent
from twin_core.settings import DatasetSettings, Settings

log = logging.getLogger(__name__)


def read_cleaned(settings: Settings, author: str, store: Any = None) -> list[CleanedDocument]:
    """The author's cleaned documents from the feature store, in link order (the link key, not the id:
    the order decides which copy of a duplicate text is kept). Opens (and closes) a store if none is given."""
    from twin_core.features.feature_store import cleaned_collection
    from twin_core.stores.vectors import open_vector_store

    own = store is None
    store = store or open_vector_store(settings)
    try:
        docs = []
        for category in Category:
            for point in store.scroll(cleaned_collection(category), author_id=user_id(author)):
                payload = dict(point.payload)
                payload["id"] = payload.pop("document_id", str(point.id))
                docs.append(CleanedDocument.model_validate(payload))
        return sorted(docs, key=lambda d: (link_key(d.link), d.id))
    finally:
        if own:
            store.close()


def kind_hashes(
    docs: list[CleanedDocument], ds: DatasetSettings, opts: BuildOptions, model: str | None, features: Any = None
) -> dict[str, str]:
    """Content hash of each kind, from only what decides its rows: same hash, same version.

    instruct: the corpus, what the feature store adds (retrieved context), the build logic, the strategy, the
    sampling, the filter/split settings and, for the llm strategy only, the model and its prompt. Nothing of
    the preference pairs (``max_rejected``, ``pair_kinds``, the rejected answers' model) enters it.
    preference: the instruct hash (its pairs come from those rows), ``max_rejected``, ``pair_kinds``, the
    length budget and, when model pairs are asked for, the model and the serving prompt."""
    llm = opts.strategy == "llm"
    instruct = content_hash(
        {
            "features": features,
            "documents": [[d.id, content_hash(d.content)] for d in docs],
            "build": BUILD_VERSION,
            "strategy": opts.strategy,
            # the seed picks the extractive instruction forms and the sample of extracts (if limited)
            "seed": opts.seed if not llm or opts.max_extracts else None,
            "max_extracts": opts.max_extracts,
            **({"model": model, "prompt": [PROMPT_VERSION, GENERATION_PROMPT_VERSION]} if llm else {}),
            "settings": ds.model_dump(
                mode="json",
                exclude={"strategy", "seed", "max_extracts", "max_rejected", "rejected_max_new_tokens"},
            ),
        }
    )
    by_model = "model" in opts.pair_kinds
    preference = content_hash(
        {
            "instruct": instruct,
            "max_rejected": opts.max_rejected,
            "pair_kinds": list(opts.pair_kinds),
            "rejected_max_new_tokens": ds.rejected_max_new_tokens,
            **({"model": model, "prompt": PROMPT_VERSION} if by_model else {}),
        }
    )
    return {"instruct": instruct, "preference": preference}


def _sample(extracts: list[Extract], seed: int, limit: int) -> list[Extract]:
    if not limit or len(extracts) <= limit:
        return extracts
    rng = random.Random(seed)
    picked = rng.sample(range(len(extracts)), limit)
    return [extracts[i] for i in sorted(picked)]


def plan_build(
    author: str,
    docs: list[CleanedDocument],
    ds: DatasetSettings,
    opts: BuildOptions,
    model_label: str | None,
    features: Any = None,
    context_tokens: int = 1024,
) -> BuildPlan:
    """Pure: the extracts to turn into rows, the content hash of each kind and whether a model will be needed.
    ``features`` describes what the feature store adds (``neighbours.snapshot_label``)."""
    if not docs:
        raise InputError(f"author {author!r} has no cleaned documents in the feature store (run `twin features run`)")
    extracts = _sample([e for d in docs for e in cut(d)], opts.seed, opts.max_extracts)
    if not extracts:
        raise InputError(f"author {author!r}: the cleaned documents give no extract")
    return BuildPlan(
        author=author,
        slug=slugify(author),
        opts=opts,
        datasets=ds,
        hashes=kind_hashes(docs, ds, opts, model_label, features),
        extracts=extracts,
        documents=[{"id": d.id, "content_hash": content_hash(d.content), "link": d.link} for d in docs],
        needs_model=opts.strategy == "llm" or (bool(opts.max_rejected) and "model" in opts.pair_kinds),
        boilerplate=quality.recurring_lines([d.content for d in docs]),
        context_tokens=ds.context_tokens or context_tokens,
    )


def clean_rows(
    raw: list[Row], ds: DatasetSettings, boilerplate: frozenset[str] = frozenset()
) -> tuple[list[Row], dict[str, Any]]:
    """Filters, duplicates, the split by document, decontamination; each step's removals reported."""
    kept, removed = quality.filter_rows(
        raw, text_key="answer", min_chars=ds.min_answer_chars, max_chars=ds.max_answer_chars, language=ds.language
    )
    report: dict[str, Any] = {"filters": dict(removed)}
    kept, removed = quality.deduplicate(kept, text_key="answer", jaccard=ds.near_duplicate_jaccard)
    report["deduplication"] = dict(removed)
    assign_splits(kept, ds.test_percent, ds.min_test_rows)
    n = ds.decontamination_ngram
    kept, removed = quality.decontaminate(kept, text_keys=("instruction", "answer"), n=n, ignore_lines=boilerplate)
    report["decontamination"] = dict(removed)
    report["boilerplate_lines_ignored"] = len(boilerplate)
    return kept, report


def _pairs(
    plan: BuildPlan, instruct: list[Row], gen: CachedLLM | None, neighbours: Any, progress: ProgressFactory
) -> tuple[list[Row], dict[str, Any]]:
    """Both kinds of preference pairs on the same candidates (``pairs.py``) and what each adds."""
    kinds = plan.opts.pair_kinds
    by_model = gen is not None and "model" in kinds
    by_contrast = neighbours is not None and neighbours.available and "other_author" in kinds
    if not plan.opts.max_rejected or not (by_model or by_contrast):
        return [], {}
    tokens = gen.llm if gen is not None else pairs.CharTokens()
    budget = plan.datasets.rejected_max_new_tokens
    candidates = pairs.pair_candidates(instruct, plan.opts.max_rejected, budget, tokens)
    made = pairs.model_pairs(candidates, plan.author, gen, tokens, progress) if by_model else []
    if by_contrast:
        made += pairs.contrast_pairs(candidates, plan.author, neighbours, tokens)
    return made, pairs.pairs_report(made, len(candidates), tokens)


def run_build(
    plan: BuildPlan,
    store: Any,
    open_model: Any = None,
    progress: ProgressFactory = silent,
    neighbours: Any = None,
) -> BuiltRows:
    """Rows of both datasets (a model is opened only when the plan needs one); ``neighbours`` gives the
    rows their retrieved context and the contrast pairs their other-author passages."""
    llm = open_model() if plan.needs_model and open_model else None
    gen = CachedLLM(llm, store) if llm else None
    raw, forms, dropped = rows.instruct_rows(plan.extracts, plan.opts.strategy, plan.opts.seed, gen, progress)
    instruct, report = clean_rows(raw, plan.datasets, plan.boilerplate)
    report = {"dropped": dict(dropped), **report}
    if not instruct:
        raise InputError(f"author {plan.author!r}: every sample was filtered out ({report})")
    if neighbours is not None and neighbours.available:
        report["context"] = neighbours.attach_contexts(instruct, plan.author, plan.context_tokens)
    else:
        report["context"] = {"rows_with_context": 0, "reason": "no embedded chunks (run `twin features run`)"}
    preference, pairs_stats = _pairs(plan, instruct, gen, neighbours, progress)
    return BuiltRows(
        instruct=instruct,
        preference=preference,
        forms=forms,
        report=report,
        pairs=pairs_stats,
        model_version=llm.model_version if llm else None,
        llm_calls=gen.calls if gen else 0,
        llm_cache_hits=gen.hits if gen else 0,
    )


def build_author(
    settings: Settings,
    author: str,
    opts: BuildOptions,
    *,
    open_model: Any = None,
    progress: ProgressFactory = silent,
    embedder: Any = None,
) -> AuthorBuild:
    """Build (or find) both dataset versions of ``author``. ``open_model()`` -> LLMBackend is called only
    when a model is needed (LLM strategy, rejected answers); its ``label`` enters the content hash of
    the kinds it makes.
    ``embedder`` replaces the configured embedding model (tests)."""
    from twin_core.datasets.neighbours import Neighbours, snapshot_label
    from twin_core.datasets.record import existing_versions, record_build
    from twin_core.stores.artifacts import open_artifact_store
    from twin_core.stores.vectors import open_vector_store

    vectors = open_vector_store(settings)
    try:
        docs = read_cleaned(settings, author, vectors)
        if not docs:  # before the embedding model loads
            raise InputError(nothing_to_build_from(settings, author))
        neighbours = Neighbours.open(settings, vectors, embedder)
        label = getattr(open_model, "label", None)
        features = {**snapshot_label(settings, neighbours), "context_tokens": settings.rag.context_tokens}
        plan = plan_build(author, docs, settings.datasets, opts, label, features, settings.rag.context_tokens)
        store = open_artifact_store(settings)
        existing = existing_versions(store, plan.slug, plan.hashes, want_preference=bool(opts.max_rejected))
        if existing:
            result = AuthorBuild(author, plan.slug, existing, {k: False for k in existing}, {"unchanged": True})
            return with_warnings(result, store, opts.min_held_out)
        built = run_build(plan, store, open_model, progress, neighbours)
    finally:
        vectors.close()
    return with_warnings(record_build(plan, built, store, AuthorBuild(author, plan.slug)), store, opts.min_held_out)


def nothing_to_build_from(settings: Settings, author: str) -> str:
    """Why ``author`` has no cleaned documents, and the step that gives them some: the warehouse says whether
    there is nothing to featurize yet (crawl or import first) or it is not featurized yet."""
    from twin_core.stores.warehouse import open_warehouse

    warehouse = open_warehouse(settings)
    try:
        usable = len(warehouse.content_hashes(user_id(author)))
        stored = len(warehouse.content_hashes(user_id(author), include_quarantined=True))
    finally:
        warehouse.close()
    if usable:
        why = f"; its {usable} documents in the warehouse are not featurized yet: run `twin features run`"
    elif stored:
        why = f"; all {stored} of its documents in the warehouse are quarantined (`twin validate raw` says why)"
    else:
        why = (
            ", nor any document in the warehouse: crawl (`twin etl crawl`) or import (`twin warehouse import`) "
            "their writing, then run `twin features run`"
        )
    return f"author {author!r} has no cleaned documents in the feature store{why}"


def with_warnings(result: AuthorBuild, store: Any, min_rows: int | None) -> AuthorBuild:
    """A WARNING (and a ``warnings`` entry in the result) when the instruct version holds out fewer rows
    than the evaluation needs (``min_rows``; at least 1): ``twin evaluate`` would refuse it."""
    from twin_core.datasets.versions import artifact_name, parse_version_id

    version_id = result.versions.get("instruct")
    if not version_id:
        return result
    kind, slug, version = parse_version_id(version_id)
    held_out = int(store.get_version(artifact_name(kind, slug), version).metadata.get("splits", {}).get("test", 0))
    if held_out >= max(min_rows or 0, 1):
        return result
    if min_rows is None:
        why = "the evaluation will refuse it"
    else:
        why = (
            f"the evaluation needs at least {min_rows} (samples.min_rows in configs/evaluation.yaml) and will refuse it"
        )
    warning = (
        f"author {result.author!r}: dataset {version_id} has {held_out} held-out (test) rows; {why} "
        "(more documents, or a higher TWIN_DATASETS_TEST_PERCENT / TWIN_DATASETS_MIN_TEST_ROWS)"
    )
    log.warning("datasets build: %s", warning)
    result.stats.setdefault("warnings", []).append(warning)
    return result
