"""``evaluate``: a model version and its baseline on the author's held-out documents, then the gate.

Three phases:
- ``plan`` (no model loaded): the candidate, the baseline, the evaluation set (the author's instruct
  test split, whatever dataset trained the candidate, cut to ``max_rows``; InputError when fewer than
  ``min_rows`` remain), the other
  authors' held-out text (attribution) and production twins (perplexity specificity);
- ``prepare``: retrieval once per row (shared) and the hash of every input (``resume.inputs_hash``: the
  CLI returns a stored complete report of the same inputs instead of evaluating again);
- ``run``: per model: per-row perplexity of the author's text, batched answers, per-row metrics, batched
  judge scores; each model checkpointed once measured in full (``resume.Checkpoints``: a killed run resumes);
- ``record``: the gate on paired per-row differences with bootstrap intervals, and the result.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

from twin_core.errors import InputError
from twin_core.evaluation import metrics as m
from twin_core.evaluation.attribution import Attributor, fit_attributor
from twin_core.evaluation.config import METRICS, EvalConfig, load_eval_config
from twin_core.evaluation.eval_set import EvalSet, authors_prose, instruct_version, load_eval_set
from twin_core.evaluation.gate import apply_gate
from twin_core.evaluation.judge import Judge
from twin_core.llm.prompt import ContextChunk, build_messages
from twin_core.progress import ProgressFactory, silent
from twin_core.settings import Settings, updated
from twin_core.stores.registry import ModelRegistry, ModelVersion, open_registry

log = logging.getLogger(__name__)

Retrieve = Callable[[str, str, int], list[dict[str, Any]]]  # (query, author, k) -> hits with document_id, link, text


@dataclass
class Tools:
    """What evaluation needs from layers above it, handed in by the caller (CLI, demo, tests)."""

    embed: Callable[[list[str]], Any] | None = None  # unit-normalized embeddings (topic similarity)
    retrieve: Retrieve | None = None  # the feature store's search (RAG metrics); None = no vector store
    judge: Judge | None = None
    progress: ProgressFactory = silent
    load_model: Callable[[Settings, str, str], Any] | None = None  # (settings, location, version) -> LocalLLM


@dataclass
class Subject:
    role: str  # "candidate" | "baseline" | "base" | "twin:<author_slug>"
    ref: str  # registry ref, or "base:<model>"
    location: str
    version: str
    stage: str | None = None
    note: str = ""


@dataclass
class EvalPlan:
    """What will run: both subjects, the rows, the comparison texts and models, the settings."""

    author: str
    author_slug: str
    candidate: Subject
    baseline: Subject
    eval_set: EvalSet
    prose: dict[str, dict[str, list[str]]]  # author slug -> train / test prose, for attribution
    perplexity_only: list[Subject]  # the base model (when not the baseline) and other authors' twins
    config: EvalConfig

    @cached_property
    def attributor(self) -> Attributor | None:
        """Fitted once, on every author's training prose (None with fewer than two authors)."""
        return fit_attributor({a: t["train"] for a, t in self.prose.items()}) if len(self.prose) >= 2 else None


@dataclass
class Measured:
    """What ran: per-row values per subject, answers, RAG, timings."""

    per_row: dict[str, dict[str, list[float | None]]]  # role -> metric -> rows
    answers: dict[str, list[str | None]]
    pooled_style: dict[str, float | None]
    perplexity: dict[str, float | None]  # role/twin -> mean perplexity of the author's held-out text
    rag: dict[str, Any]
    ranks: list[int | None]
    judge: dict[str, Any]
    seconds: dict[str, float]
    inputs_hash: str = ""


@dataclass
class EvaluationResult:
    candidate: Subject
    baseline: Subject
    author: str
    author_slug: str
    dataset_version: str
    rows: int
    metrics: dict[str, dict[str, float | None]]
    rag: dict[str, Any]
    judge: dict[str, Any]
    gate: dict[str, Any]
    stylometry: dict[str, Any] = field(default_factory=dict)
    perplexity: dict[str, float | None] = field(default_factory=dict)
    samples: list[dict[str, Any]] = field(default_factory=list)
    seconds: dict[str, float] = field(default_factory=dict)
    config: dict[str, Any] = field(default_factory=dict)
    inputs_hash: str = ""  # resume.inputs_hash: the same inputs give the same stored report (twin evaluate)

    def as_dict(self) -> dict[str, Any]:
        from dataclasses import asdict

        return asdict(self)


# -- plan --------------------------------------------------------------------------------------------
def _base_subject(settings: Settings, candidate: ModelVersion, role: str = "baseline", note: str = "") -> Subject:
    from twin_core.llm.base_model import resolve_base

    base = str(candidate.metadata.get("base_model") or settings.llm.model_id)
    return Subject(role, f"base:{base}", resolve_base(settings, base), base, None, note)


def _registered(registry: ModelRegistry, mv: ModelVersion, role: str) -> Subject:
    return Subject(role, mv.ref, str(registry.local_weights(mv.ref)), mv.ref, mv.stage)


def resolve_baseline(settings: Settings, registry: ModelRegistry, candidate: ModelVersion, spec: str) -> Subject:
    """production (falls back to the base model when the author has none), base, or a version ref."""
    spec = (spec or "production").strip()
    if spec == "base":
        return _base_subject(settings, candidate)
    if spec == "production":
        prod = registry.production(candidate.author)
        if prod is None:
            note = f"{candidate.author} has no production version: the base model"
            return _base_subject(settings, candidate, note=note)
        if prod.ref == candidate.ref:
            raise InputError(f"{candidate.ref} is already the production version: nothing to compare it with")
        return _registered(registry, prod, "baseline")
    return _registered(registry, registry.get(spec), "baseline")


def _other_twins(registry: ModelRegistry, author: str) -> list[Subject]:
    authors = sorted({mv.author for mv in registry.list()} - {author})
    prods = [(a, registry.production(a)) for a in authors]
    return [_registered(registry, p, f"twin:{p.author_slug}") for _, p in prods if p is not None]


def plan(settings: Settings, model_ref: str, baseline: str = "production", cfg: EvalConfig | None = None) -> EvalPlan:
    """Everything decided before a model loads; InputError (exit 3) when the inputs are unusable."""
    cfg = cfg or load_eval_config(settings)
    registry = open_registry(settings)
    mv = registry.get(model_ref)  # unknown -> InputError
    version = instruct_version(settings, mv.author_slug, list(mv.metadata.get("dataset_versions") or []), mv.ref)
    eval_set = load_eval_set(
        settings, version, cfg.min_rows, cfg.max_rows, min_from=cfg.origin("min_rows"), max_from=cfg.origin("max_rows")
    )
    base = resolve_baseline(settings, registry, mv, baseline)
    extra = [] if base.ref.startswith("base:") else [_base_subject(settings, mv, role="base")]
    prose = authors_prose(settings, mv.author_slug, version)
    return EvalPlan(
        mv.author, mv.author_slug, _registered(registry, mv, "candidate"), base, eval_set, prose,
        extra + _other_twins(registry, mv.author), cfg,
    )  # fmt: skip


check_inputs = plan  # the CLI's cheap pre-flight: the same checks, no model loaded


# -- run ---------------------------------------------------------------------------------------------
def _load_model(settings: Settings, location: str, version: str) -> Any:
    from twin_core.llm.loading import load_local_llm

    return load_local_llm(updated(settings, llm_model_id=location, llm_model_version=version))


def _contexts(row: dict[str, Any], hits: list[dict[str, Any]] | None) -> list[ContextChunk]:
    if hits:
        return [
            ContextChunk(text=h.get("text", ""), link=h.get("link", ""), category=h.get("category", "")) for h in hits
        ]
    ctx = row.get("context")
    texts = [ctx] if isinstance(ctx, str) and ctx.strip() else [str(t) for t in (ctx or []) if str(t).strip()]
    return [ContextChunk(text=t, link=str(row.get("link") or "")) for t in texts]


def retrieve_all(p: EvalPlan, tools: Tools) -> tuple[list[list[dict[str, Any]] | None], dict[str, Any], list]:
    """Retrieval once per row, shared by every model; RAG metrics missing (not failing) without a store."""
    rows, k = p.eval_set.rows, p.config.rag_k
    rag: dict[str, Any] = {"k": k, "status": "missing", "hit_at_k": None, "mrr": None, "queries": 0}
    if tools.retrieve is None:
        return [None] * len(rows), {**rag, "reason": "no vector store given"}, [None] * len(rows)
    try:
        hits = [tools.retrieve(str(r["instruction"]), p.author, k) for r in tools.progress(rows, desc="retrieval")]
    except Exception as exc:  # noqa: BLE001 - RAG metrics are missing, the rest goes on
        log.warning("retrieval failed, RAG metrics missing: %s: %s", type(exc).__name__, exc)
        return [None] * len(rows), {**rag, "reason": f"{type(exc).__name__}: {exc}"}, [None] * len(rows)
    ranks = [
        m.first_relevant_rank(h or [], r.get("document_id"), r.get("link")) for h, r in zip(hits, rows, strict=True)
    ]
    rag.update(status="ok", hit_at_k=m.hit_at_k(ranks, k), mrr=m.mrr(ranks, k), queries=len(rows))
    return list(hits), rag, ranks


def measure(settings: Settings, p: EvalPlan, subject: Subject, hits: list, tools: Tools, seconds: dict) -> Any:
    """One model: per-row perplexity, batched answers, per-row metrics, batched judge scores."""
    from twin_core.evaluation.answers import generate, texts_or_none
    from twin_core.evaluation.scoring import pooled_style, row_perplexities, score_answers

    rows, cfg, refs = p.eval_set.rows, p.config, p.eval_set.references
    t0 = time.perf_counter()
    llm = (tools.load_model or _load_model)(settings, subject.location, subject.version)
    per_row = {"perplexity": row_perplexities(llm, rows, p.author, cfg.perplexity_max_length)}
    t1 = time.perf_counter()
    tokens = llm if hasattr(llm, "truncate") else None
    prompts = [
        build_messages(str(r["instruction"]), _contexts(r, h), author=p.author, tokens=tokens,
                       context_budget=settings.rag.context_tokens).messages
        for r, h in zip(rows, hits, strict=True)
    ]  # fmt: skip
    raw = generate(llm, prompts, cfg.max_new_tokens, batch_size=cfg.batch_size, progress=tools.progress,
                   desc=f"answers ({subject.role})")  # fmt: skip
    answers = texts_or_none(raw, subject.ref, [r.get("id") for r in rows])
    t2 = time.perf_counter()
    per_row.update(score_answers(answers, refs, hits, tools.embed, p.author_slug, p.attributor))
    judge = tools.judge or Judge(None, "off")
    judged = judge.score_batch(
        [(str(r["instruction"]), a, ref) for r, a, ref in zip(rows, answers, refs, strict=True)],
        batch_size=cfg.batch_size,
    )
    per_row["judge_accuracy"] = [j["accuracy"] for j in judged]
    per_row["judge_style"] = [j["style"] for j in judged]
    seconds.update({f"{subject.role}.perplexity": t1 - t0, f"{subject.role}.answers": t2 - t1,
                    f"{subject.role}.metrics+judge": time.perf_counter() - t2})  # fmt: skip
    return per_row, answers, pooled_style(answers, refs)


def _perplexity_only(settings: Settings, p: EvalPlan, tools: Tools) -> dict[str, float | None]:
    from twin_core.evaluation.scoring import row_perplexities

    out: dict[str, float | None] = {}
    for subject in p.perplexity_only:
        llm = (tools.load_model or _load_model)(settings, subject.location, subject.version)
        out[subject.role] = m.mean(row_perplexities(llm, p.eval_set.rows, p.author, p.config.perplexity_max_length))
    return out


@dataclass
class Prepared:
    """Retrieval (once per row, shared by every model) and the hash of the evaluation's inputs."""

    hits: list[list[dict[str, Any]] | None]
    rag: dict[str, Any]
    ranks: list[int | None]
    inputs_hash: str
    seconds: float


def prepare(settings: Settings, p: EvalPlan, tools: Tools) -> Prepared:
    """The retrieved context and the inputs hash (``resume.inputs_hash``): no model loaded."""
    from twin_core.evaluation.resume import inputs_hash

    t0 = time.perf_counter()
    hits, rag, ranks = retrieve_all(p, tools)
    judge = tools.judge or Judge(None, "off")
    asked = judge.llm is not None or judge.unavailable_reason is not None  # a judge that failed to open is not "off"
    key = inputs_hash(settings, p, judge.name if asked else "off", tools.embed is not None, hits)
    return Prepared(hits, rag, ranks, key, time.perf_counter() - t0)


def _measured(
    settings: Settings, p: EvalPlan, subject: Subject, prepared: Prepared, tools: Tools, checkpoints: Any
) -> dict[str, Any]:
    """One model's measurements: from its checkpoint when a killed run of these inputs finished it (the judge's
    share of it added back), else measured, and checkpointed when complete (every answer, and no judge call of
    the run unreachable so far: a model the judge skipped because it was unreachable before is not complete)."""
    judge = tools.judge or Judge(None, "off")
    saved = checkpoints.load(subject.role) if checkpoints is not None else None
    if saved is not None:
        judge.resume(saved.get("judge", {}))
        return saved
    mark, seconds = judge.mark(), {}
    per_row, answers, pooled = measure(settings, p, subject, prepared.hits, tools, seconds)
    out = {"per_row": per_row, "answers": answers, "pooled": pooled, "seconds": seconds, "judge": judge.since(mark)}
    # a judge reply without scores is the same on a re-run (greedy); an unreachable judge may not be
    whole = all(a is not None for a in answers) and judge.unreachable == 0
    if checkpoints is not None and whole:
        checkpoints.save(subject.role, out)
    return out


def run(
    settings: Settings, p: EvalPlan, tools: Tools, prepared: Prepared | None = None, checkpoints: Any = None
) -> Measured:
    """Both models measured (``checkpoints``: a ``resume.Checkpoints``, or None), then the comparison models."""
    prepared = prepared or prepare(settings, p, tools)
    seconds: dict[str, float] = {"retrieval": prepared.seconds}
    per_row, answers, pooled = {}, {}, {}
    for subject in (p.candidate, p.baseline):
        got = _measured(settings, p, subject, prepared, tools, checkpoints)
        role = subject.role
        per_row[role], answers[role], pooled[role] = got["per_row"], got["answers"], got["pooled"]
        seconds.update(got["seconds"])
    ppl = {role: m.mean(per_row[role]["perplexity"]) for role in ("candidate", "baseline")}
    if p.baseline.ref.startswith("base:"):
        ppl["base"] = ppl["baseline"]
    t0 = time.perf_counter()
    ppl.update(_perplexity_only(settings, p, tools))
    seconds["perplexity.others"] = time.perf_counter() - t0
    judge = (tools.judge or Judge(None, "off")).summary()
    return Measured(per_row, answers, pooled, ppl, prepared.rag, prepared.ranks, judge, seconds, prepared.inputs_hash)


# -- record ------------------------------------------------------------------------------------------
def _samples(p: EvalPlan, ms: Measured) -> list[dict[str, Any]]:
    out = []
    for i, row in enumerate(p.eval_set.rows):
        sample: dict[str, Any] = {"id": row.get("id"), "instruction": row["instruction"],
                                  "reference": p.eval_set.references[i], "source": row.get("link"),
                                  "retrieval_rank": ms.ranks[i]}  # fmt: skip
        for role in ("candidate", "baseline"):
            values = {name: ms.per_row[role][name][i] for name in METRICS}
            sample[role] = {"answer": ms.answers[role][i], **values}
        out.append(sample)
    return out


def _stylometry(p: EvalPlan, ms: Measured) -> dict[str, Any]:
    from twin_core.evaluation.scoring import attribution_calibration

    attributor = p.attributor
    held_out = {author: texts["test"] for author, texts in p.prose.items()}
    calibration = attribution_calibration(ms.answers["candidate"], attributor, held_out) if attributor else None
    found = {role: ms.per_row[role]["attribution"] for role in ("candidate", "baseline")}
    return {
        "measure": "Burrows' Delta over the most frequent words (lower = closer to the author's held-out text)",
        "reference_texts": len(p.eval_set.references),
        "distance": ms.pooled_style,
        "authors": sorted(p.prose),
        "attribution_measure": "naive Bayes over shared words and punctuation, fitted on each author's training prose",
        "attribution_share": {role: m.mean(values) for role, values in found.items()} if attributor else None,
        "attribution_rows": {role: sum(v is not None for v in values) for role, values in found.items()},
        "attribution_ci95": {role: _share_interval(values) for role, values in found.items()} if attributor else None,
        "attribution_calibration": calibration,
    }


def _share_interval(values: list[Any]) -> list[float] | None:
    """Wilson 95 % interval of an attribution share (rows attributed 1 or 0; None = no answer)."""
    seen = [v for v in values if v is not None]
    return m.wilson_ci95(int(sum(seen)), len(seen))


def _why_missing(gate: dict[str, Any], ms: Measured) -> dict[str, Any]:
    """A missing or skipped judge or groundedness check says why its data is missing (the judge's status and
    reason, the retrieval's), so the report and the result line tell "judge unavailable" from "too few rows"."""
    judge = ms.judge
    causes = {}
    if judge.get("status") not in ("ok", "partial"):
        cause = f"judge {judge.get('status')}" + (f": {judge['reason']}" if judge.get("reason") else "")
        causes |= {"judge_accuracy": cause, "judge_style": cause}
    if ms.rag.get("status") != "ok":
        causes["groundedness"] = f"no retrieved context ({ms.rag.get('reason')})"
    for check in gate["checks"]:
        if check["outcome"] in ("missing", "skipped") and check["metric"] in causes:
            check["reason"] = f"{causes[check['metric']]}; {check['reason']}"
    return gate


def record(p: EvalPlan, ms: Measured, started: float) -> EvaluationResult:
    gate = _why_missing(apply_gate(ms.per_row["candidate"], ms.per_row["baseline"], p.config).as_dict(), ms)
    metrics = {
        role: {**{k: m.mean(v) for k, v in ms.per_row[role].items()},
               "answered": sum(a is not None for a in ms.answers[role])}
        for role in ("candidate", "baseline")
    }  # fmt: skip
    seconds = {**ms.seconds, "total": time.perf_counter() - started}
    cfg = p.config
    return EvaluationResult(
        candidate=p.candidate, baseline=p.baseline, author=p.author, author_slug=p.author_slug,
        dataset_version=p.eval_set.dataset_version, rows=len(p.eval_set.rows), metrics=metrics,
        rag=ms.rag, judge=ms.judge, gate=gate, stylometry=_stylometry(p, ms), perplexity=ms.perplexity,
        samples=_samples(p, ms), seconds={k: round(v, 3) for k, v in seconds.items()},
        config={"source": cfg.source, "max_rows": cfg.max_rows, "min_rows": cfg.min_rows,
                "max_new_tokens": cfg.max_new_tokens, "batch_size": cfg.batch_size, "confidence": cfg.confidence},
        inputs_hash=ms.inputs_hash,
    )  # fmt: skip


def evaluate(
    settings: Settings,
    model_ref: str,
    baseline: str = "production",
    *,
    tools: Tools | None = None,
    config: EvalConfig | None = None,
    checkpoints: Any = None,
) -> EvaluationResult:
    """plan -> run -> record (``checkpoints``: a ``resume.Checkpoints`` to resume a killed run, or None)."""
    started = time.perf_counter()
    p = plan(settings, model_ref, baseline, config)
    return record(p, run(settings, p, tools or Tools(), checkpoints=checkpoints), started)
