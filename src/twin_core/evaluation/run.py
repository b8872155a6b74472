"""``evaluate``: a model version and its baseline, answered and measured on the held-out test split.

Steps: resolve both models (a registry version, the production version, or the base model the
candidate was trained from); read the test split of the candidate's dataset version (empty ->
InputError); retrieve context for every held-out instruction once (hit@k / MRR against the row's
source document); then for each model: perplexity of the author's held-out answers given the served
prompt, an answer per row (the served prompt with the retrieved context), ROUGE-L, style similarity,
groundedness and the judge's scores. The gate compares the two columns.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from twin_core.errors import InputError
from twin_core.evaluation import metrics as m
from twin_core.evaluation.config import EvalConfig, load_eval_config
from twin_core.evaluation.gate import apply_gate
from twin_core.evaluation.judge import Judge
from twin_core.llm.prompt import ContextChunk, build_messages
from twin_core.progress import ProgressFactory, silent
from twin_core.settings import Settings, updated
from twin_core.stores.registry import ModelRegistry, ModelVersion, open_registry

log = logging.getLogger(__name__)

METRICS = ("perplexity", "style_similarity", "rouge_l", "judge_accuracy", "judge_style", "groundedness")
Retrieve = Callable[[str, str, int], list[dict[str, Any]]]  # (query, author, k) -> hits with document_id, link, text


@dataclass
class Tools:
    """What evaluation needs from layers above it, handed in by the caller (CLI, demo, tests)."""

    embed: Callable[[list[str]], Any] | None = None  # unit-normalized embeddings (style similarity)
    retrieve: Retrieve | None = None  # the feature store's search (RAG metrics); None = no vector store
    judge: Judge | None = None
    progress: ProgressFactory = silent
    load_model: Callable[[Settings, str, str], Any] | None = None  # (settings, location, version) -> LocalLLM


@dataclass
class Subject:
    role: str  # "candidate" | "baseline"
    ref: str  # registry ref, or "base:<model>"
    location: str
    version: str
    stage: str | None = None
    note: str = ""


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
    samples: list[dict[str, Any]] = field(default_factory=list)
    seconds: dict[str, float] = field(default_factory=dict)
    config: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        from dataclasses import asdict

        return asdict(self)


def _base_subject(settings: Settings, candidate: ModelVersion, note: str = "") -> Subject:
    from twin_core.training.model import resolve_base

    base = str(candidate.metadata.get("base_model") or settings.llm.model_id)
    return Subject("baseline", f"base:{base}", resolve_base(settings, base), base, None, note)


def resolve_baseline(settings: Settings, registry: ModelRegistry, candidate: ModelVersion, spec: str) -> Subject:
    """production (falls back to the base model when the author has none), base, or a version ref."""
    spec = (spec or "production").strip()
    if spec == "base":
        return _base_subject(settings, candidate)
    if spec == "production":
        prod = registry.production(candidate.author)
        if prod is None:
            return _base_subject(settings, candidate, f"{candidate.author} has no production version: the base model")
        if prod.ref == candidate.ref:
            raise InputError(f"{candidate.ref} is already the production version: nothing to compare it with")
        return Subject("baseline", prod.ref, str(registry.local_weights(prod.ref)), prod.ref, prod.stage)
    other = registry.get(spec)
    return Subject("baseline", other.ref, str(registry.local_weights(other.ref)), other.ref, other.stage)


def _load_model(settings: Settings, location: str, version: str) -> Any:
    from twin_core.llm.local import load_local_llm

    return load_local_llm(updated(settings, llm_model_id=location, llm_model_version=version))


def _test_rows(settings: Settings, dataset_version: str, cfg: EvalConfig) -> tuple[Any, list[dict[str, Any]], str]:
    from twin_core.datasets.versions import load_dataset_version

    version = load_dataset_version(settings, dataset_version)  # unknown -> InputError
    ref_key = "answer" if version.kind == "instruct" else "chosen"
    rows = sorted(version.rows("test"), key=lambda r: str(r.get("id", "")))
    rows = [r for r in rows if str(r.get("instruction") or "").strip() and str(r.get(ref_key) or "").strip()]
    if not rows:
        raise InputError(
            f"dataset {dataset_version} has an empty test split (no held-out rows with an instruction and "
            f"{'an answer' if ref_key == 'answer' else 'a chosen answer'}): nothing to evaluate on; "
            "rebuild the dataset with a test share > 0"
        )
    if cfg.max_rows > 0:
        rows = rows[: cfg.max_rows]
    return version, rows, ref_key


def _perplexity(llm: Any, rows: list[dict[str, Any]], author: str, ref_key: str, max_length: int) -> float | None:
    from twin_core.training.data import prompt_and_answer_text, sft_example
    from twin_core.training.metrics import perplexity

    if not hasattr(llm, "model"):  # a remote model: no logits here
        return None
    pairs = []
    for row in rows:
        example = sft_example({**row, "answer": row[ref_key]}, author)
        pairs.append(prompt_and_answer_text(llm.tokenizer, example))
    return perplexity(llm.model, llm.tokenizer, pairs, max_length=max_length)


def _contexts(row: dict[str, Any], hits: list[dict[str, Any]] | None) -> list[ContextChunk]:
    if hits:
        return [
            ContextChunk(text=h.get("text", ""), link=h.get("link", ""), category=h.get("category", "")) for h in hits
        ]
    ctx = row.get("context")
    texts = [ctx] if isinstance(ctx, str) and ctx.strip() else [str(t) for t in (ctx or []) if str(t).strip()]
    return [ContextChunk(text=t, link=str(row.get("link") or "")) for t in texts]


def check_inputs(
    settings: Settings, model_ref: str, cfg: EvalConfig | None = None
) -> tuple[ModelVersion, Any, list[dict[str, Any]], str]:
    """The model version, its dataset version and the held-out rows; InputError (exit 3) when unusable.

    Cheap (no model is loaded): callers run it before loading anything.
    """
    cfg = cfg or load_eval_config(settings)
    candidate_mv = open_registry(settings).get(model_ref)  # unknown -> InputError
    datasets = candidate_mv.metadata.get("dataset_versions") or []
    if not datasets:
        raise InputError(f"{model_ref} records no dataset version: no held-out split to evaluate on")
    version, rows, ref_key = _test_rows(settings, str(datasets[0]), cfg)
    return candidate_mv, version, rows, ref_key


def evaluate(
    settings: Settings,
    model_ref: str,
    baseline: str = "production",
    *,
    tools: Tools | None = None,
    config: EvalConfig | None = None,
) -> EvaluationResult:
    tools = tools or Tools()
    cfg = config or load_eval_config(settings)
    registry = open_registry(settings)
    started = time.perf_counter()
    candidate_mv, version, rows, ref_key = check_inputs(settings, model_ref, cfg)
    author = candidate_mv.author
    cand = Subject(
        "candidate",
        candidate_mv.ref,
        str(registry.local_weights(candidate_mv.ref)),
        candidate_mv.ref,
        candidate_mv.stage,
    )
    base = resolve_baseline(settings, registry, candidate_mv, baseline)
    seconds: dict[str, float] = {}

    # -- RAG retrieval: once, shared by both models (retrieval does not depend on the LLM) --------------
    t0 = time.perf_counter()
    hits_per_row: list[list[dict[str, Any]] | None] = [None] * len(rows)
    rag: dict[str, Any] = {"k": cfg.rag_k, "status": "missing", "hit_at_k": None, "mrr": None, "queries": 0}
    if tools.retrieve is not None:
        try:
            for i, row in enumerate(tools.progress(rows, desc="retrieval", unit="query")):
                hits_per_row[i] = tools.retrieve(str(row["instruction"]), author, cfg.rag_k)
            ranks = [
                m.first_relevant_rank(h or [], row.get("document_id"), row.get("link"))
                for h, row in zip(hits_per_row, rows, strict=True)
            ]
            rag.update(
                status="ok",
                hit_at_k=m.hit_at_k(ranks, cfg.rag_k),
                mrr=m.mrr(ranks, cfg.rag_k),
                queries=len(rows),
                ranks=ranks,
            )
        except Exception as exc:  # noqa: BLE001 - RAG metrics are missing, the rest goes on
            log.warning("retrieval failed, RAG metrics missing: %s: %s", type(exc).__name__, exc)
            hits_per_row = [None] * len(rows)
            rag.update(status="missing", reason=f"{type(exc).__name__}: {exc}")
    else:
        rag["reason"] = "no vector store given"
    seconds["retrieval"] = time.perf_counter() - t0

    references = [str(r[ref_key]) for r in rows]
    results: dict[str, dict[str, float | None]] = {}
    answers: dict[str, list[str | None]] = {}
    per_row: dict[str, dict[str, list[Any]]] = {}
    judge = tools.judge or Judge(None, "off")
    loader = tools.load_model or _load_model
    for subject in (cand, base):
        t0 = time.perf_counter()
        llm = loader(settings, subject.location, subject.version)
        ppl = _perplexity(llm, rows, author, ref_key, cfg.perplexity_max_length)
        seconds[f"{subject.role}.perplexity"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        outs: list[str | None] = []
        for i, row in enumerate(tools.progress(rows, desc=f"answers ({subject.role})", unit="row")):
            prompt = build_messages(
                str(row["instruction"]),
                _contexts(row, hits_per_row[i]),
                author=author,
                tokens=llm if hasattr(llm, "truncate") else None,
                context_budget=settings.rag.context_tokens,
            )
            try:
                outs.append(llm.chat(prompt.messages, max_new_tokens=cfg.max_new_tokens, temperature=0.0).text)
            except Exception as exc:  # noqa: BLE001 - a failed generation is a missing answer
                log.warning("%s: generation failed on row %s: %s", subject.ref, row.get("id"), exc)
                outs.append(None)
        seconds[f"{subject.role}.answers"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        rouge = m.rouge_l(outs, references)
        style = m.style_similarity(outs, references, tools.embed) if tools.embed else [None] * len(rows)
        grounded = [
            m.groundedness(a, [h.get("text", "") for h in (hits or [])]) if hits else None
            for a, hits in zip(outs, hits_per_row, strict=True)
        ]
        seconds[f"{subject.role}.metrics"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        judged = [
            judge.score(str(r["instruction"]), a, ref)
            for r, a, ref in zip(
                tools.progress(rows, desc=f"judge ({subject.role})", unit="row"), outs, references, strict=True
            )
        ]
        seconds[f"{subject.role}.judge"] = time.perf_counter() - t0
        acc = [j["accuracy"] for j in judged]
        sty = [j["style"] for j in judged]
        results[subject.role] = {
            "perplexity": ppl,
            "style_similarity": m.mean(style),
            "rouge_l": m.mean(rouge),
            "judge_accuracy": m.mean(acc),
            "judge_style": m.mean(sty),
            "groundedness": m.mean(grounded),
            "answered": sum(1 for a in outs if a is not None),
        }
        answers[subject.role] = outs
        per_row[subject.role] = {
            "rouge_l": rouge,
            "style": style,
            "grounded": grounded,
            "accuracy": acc,
            "judge_style": sty,
        }

    gate = apply_gate(results["candidate"], results["baseline"], cfg)
    samples = []
    for i, row in enumerate(rows):
        sample: dict[str, Any] = {
            "id": row.get("id"),
            "instruction": row["instruction"],
            "reference": references[i],
            "source": row.get("link"),
            "retrieval_rank": (rag.get("ranks") or [None] * len(rows))[i],
        }
        for role in ("candidate", "baseline"):
            pr = per_row[role]
            sample[role] = {
                "answer": answers[role][i],
                "rouge_l": pr["rouge_l"][i],
                "style_similarity": pr["style"][i],
                "groundedness": pr["grounded"][i],
                "judge_accuracy": pr["accuracy"][i],
                "judge_style": pr["judge_style"][i],
            }
        samples.append(sample)
    seconds["total"] = time.perf_counter() - started
    return EvaluationResult(
        candidate=cand,
        baseline=base,
        author=author,
        author_slug=candidate_mv.author_slug,
        dataset_version=version.version_id,
        rows=len(rows),
        metrics=results,
        rag={k: v for k, v in rag.items() if k != "ranks"},
        judge=judge.summary(),
        gate=gate.as_dict(),
        samples=samples,
        seconds={k: round(v, 3) for k, v in seconds.items()},
        config={"source": cfg.source, "max_rows": cfg.max_rows, "max_new_tokens": cfg.max_new_tokens},
    )
