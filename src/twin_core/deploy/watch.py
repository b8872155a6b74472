"""The progressive canary: one analysis per interval over a sliding window of ``inference_logs``.

``analyse`` runs ONE analysis (the pure rules are in ``deploy/analysis.py``): it reads the window
``[now - window, now]`` of the author's log (a row is the canary's when its ``model_version`` is the
canary ref; failures carry the version that served them), samples answers for the live-quality checks,
decides, acts through ``rollout`` (step the weight, promote, roll back) and writes the decision with
its numbers in the registry history: every hold and failed check too. An analysis asked for before
``interval`` has passed since the previous one is "not-due" and records nothing, so the intervals
are driven by ``now`` (``--now``), never by sleeping. ``watch --follow`` repeats it every interval.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from twin_core.deploy import rollout
from twin_core.deploy.analysis import CanaryConfig, Decision, Quality, decide, load_config
from twin_core.domain.inference import InferenceLog
from twin_core.errors import InputError
from twin_core.settings import Settings

log = logging.getLogger(__name__)

TERMINAL = ("promote", "rollback")


def _utc(at: datetime) -> datetime:
    return at.replace(tzinfo=UTC) if at.tzinfo is None else at.astimezone(UTC)


def canary_run(mv: Any) -> list[Any]:
    """The history entries of the current canary run (since it last entered the canary stage)."""
    start = None
    for i, change in enumerate(mv.history):
        if change.to_stage == "canary" and change.from_stage != "canary":
            start = i
    if start is None:
        raise InputError(f"{mv.ref} has no canary start in its history")
    return mv.history[start:]


def run_state(mv: Any) -> tuple[int, datetime | None, datetime]:
    """(failed analyses so far, when the last analysis ran, when the canary started)."""
    run = canary_run(mv)
    analyses = [c.numbers["analysis"] for c in run if isinstance(c.numbers.get("analysis"), dict)]
    failed = sum(1 for a in analyses if a.get("result") == "fail")
    last = datetime.fromisoformat(analyses[-1]["at"]) if analyses else None
    return failed, last, _utc(run[0].at)


def split_rows(rows: list[InferenceLog], canary_ref: str) -> tuple[list[InferenceLog], list[InferenceLog]]:
    """Canary rows and production rows; a row no model served (model_version None) is neither's."""
    canary = [r for r in rows if r.model_version == canary_ref]
    production = [r for r in rows if r.model_version is not None and r.model_version != canary_ref]
    return canary, production


def _sample(rows: list[InferenceLog], n: int) -> list[InferenceLog]:
    """Up to ``n`` answered rows, a stable choice (by request id), not the first or the last ones."""
    answered = [r for r in rows if r.status == "ok" and r.answer]
    return sorted(answered, key=lambda r: (r.request_id or "", r.id))[:n]


def live_quality(
    settings: Settings, author: str, canary: list[InferenceLog], production: list[InferenceLog], n: int
) -> Quality:
    """Style distance (from the author's documents, with the bootstrap interval of the increase) and
    groundedness (in the documents each answer retrieved: per answer) of a sample of each side's answers."""
    from twin_core.evaluation.metrics import groundedness
    from twin_core.evaluation.stylometry import style_comparison
    from twin_core.stores.warehouse import open_warehouse

    can, prod = _sample(canary, n), _sample(production, n)
    q = Quality(canary_answers=len(can), production_answers=len(prod))
    if not can or not prod:
        return q
    wh = open_warehouse(settings)
    user = wh.find_user(author)
    reference = [d.text for d in _author_documents(wh, user.id)] if user else []
    texts: dict[str, str] = {}

    def contexts(row: InferenceLog) -> list[str]:
        for link in {r.link for r in row.retrieved if r.link} - texts.keys():
            doc = wh.find_by_link(link)
            texts[link] = doc.text if doc else ""
        return [texts[r.link] for r in row.retrieved if r.link and texts.get(r.link)]

    def grounded(rows: list[InferenceLog]) -> tuple[float, ...]:
        return tuple(g for g in (groundedness(r.answer, contexts(r)) for r in rows) if g is not None)

    q.canary_grounded, q.production_grounded = grounded(can), grounded(prod)
    can_texts, prod_texts = [r.answer or "" for r in can], [r.answer or "" for r in prod]
    try:
        q.canary_style, q.production_style, q.style_interval = style_comparison(can_texts, prod_texts, reference)
    except ValueError as exc:  # too little text to measure style (or its interval): that check holds
        q.note = f"style not measurable: {exc}"
    return q


def _author_documents(wh: Any, author_id: str) -> list[Any]:
    from twin_core.domain.documents import Category

    return [d for cat in Category for d in wh.iter_documents(cat, {"author_id": author_id})]


QualityFn = Callable[[Settings, str, list[InferenceLog], list[InferenceLog], int], Quality]


def _numbers(decision: Decision, now: datetime, start: datetime, cfg: CanaryConfig) -> dict[str, Any]:
    analysis = {
        "at": now.isoformat(),
        "window": [start.isoformat(), now.isoformat()],
        "interval_s": cfg.interval_s,
        "window_s": cfg.window_s,
        "result": decision.result,
        "action": decision.action,
        "threshold": cfg.threshold,
        "step_weights": list(cfg.step_weights),
        "min_requests": cfg.min_requests,
    }
    return {"analysis": analysis, **decision.numbers()}


def _act(
    settings: Settings, mv: Any, decision: Decision, numbers: dict[str, Any], client: Any
) -> dict[str, Any] | None:
    from twin_core.stores.registry import open_registry

    reason = f"canary analysis: {'; '.join(decision.reasons)}"
    if decision.action == "promote":
        return rollout.promote(settings, ref=mv.ref, reason=reason, numbers=numbers, client=client)
    if decision.action == "rollback":
        return rollout.rollback(settings, ref=mv.ref, reason=reason, numbers=numbers, client=client)
    if decision.action == "step":
        return rollout.start_canary(
            settings, mv.ref, decision.next_weight, reason=reason, numbers=numbers, client=client
        )
    open_registry(settings).record(mv.ref, reason, numbers)  # hold / fail: no traffic change
    return None


def analyse(
    settings: Settings,
    *,
    author: str | None = None,
    ref: str | None = None,
    cfg: CanaryConfig | None = None,
    now: datetime | None = None,
    client: Any = None,
    quality: QualityFn = live_quality,
) -> dict[str, Any]:
    """One analysis of the canary at ``now`` (default: the clock), and the action it took."""
    from twin_core.stores.warehouse import open_warehouse

    cfg = cfg or load_config(settings)
    now = _utc(now or datetime.now(UTC))
    mv = rollout.find_canary(settings, author, ref)  # no canary -> InputError
    failed_before, last, started = run_state(mv)
    if now < started:  # its window would end before it begins
        raise InputError(f"analysis time {now.isoformat()} is before canary {mv.ref} started ({started.isoformat()})")
    if last is not None and (now - _utc(last)).total_seconds() < cfg.interval_s:
        due = _utc(last) + timedelta(seconds=cfg.interval_s)
        return {"model": mv.ref, "decision": "not-due", "next_analysis_at": due.isoformat()}
    start = max(now - timedelta(seconds=cfg.window_s), started)
    rows = list(open_warehouse(settings).inference_logs(start=start, end=now, author=mv.author))
    canary, production = split_rows(rows, mv.ref)
    q = quality(settings, mv.author, canary, production, cfg.quality_sample)
    decision = decide(canary, production, q, weight=int(mv.canary_percent or 0), failed_before=failed_before, cfg=cfg)
    numbers = _numbers(decision, now, start, cfg)
    log.info("canary %s at %s%%: %s (%s)", mv.ref, decision.weight, decision.action, "; ".join(decision.reasons))
    result = {"model": mv.ref, "decision": decision.action, "reasons": decision.reasons, **numbers}
    acted = _act(settings, mv, decision, numbers, client)
    if acted is not None:
        result["rollout"] = acted
    return result


def ended_run(mv: Any) -> dict[str, Any] | None:
    """How ``mv``'s canary run ended, once it left the canary stage (promoted, or rolled back), with the
    numbers the deciding change recorded; None while it is a canary, or when a later change followed."""
    last = mv.history[-1] if mv.history else None
    if mv.stage == "canary" or last is None or last.from_stage != "canary":
        return None
    if last.to_stage not in ("production", "archived"):
        return None
    decision = "promote" if last.to_stage == "production" else "rollback"
    ended = {"ended_at": last.at.isoformat(), "already_ended": True}
    return {"model": mv.ref, "decision": decision, "reasons": [last.reason], **last.numbers, **ended}


def watch(
    settings: Settings,
    *,
    author: str | None = None,
    ref: str | None = None,
    cfg: CanaryConfig | None = None,
    follow: bool = False,
    timeout_s: float | None = None,
    client: Any = None,
    sleep: Callable[[float], None] = time.sleep,
) -> dict[str, Any]:
    """One analysis, or with ``follow`` one every interval until promote / rollback. A ``timeout_s``
    reached without either rolls the canary back (fail closed: it never reached a verdict). Watching a
    ``ref`` whose canary run has ended reports that end (``ended_run``): a retried watch resumes."""
    from twin_core.stores.registry import open_registry

    cfg = cfg or load_config(settings)
    ended = ended_run(open_registry(settings).get(ref)) if ref else None
    if ended is not None:  # a re-run (a killed or retried watch): report the end, change nothing
        log.info("canary %s already ended: %s (%s)", ref, ended["decision"], ended["reasons"][0])
        return ended
    result = analyse(settings, author=author, ref=ref, cfg=cfg, client=client)
    analysed = result  # the last analysis with numbers (a "not-due" answer has none)
    deadline = time.monotonic() + (timeout_s if timeout_s is not None else float("inf"))
    while follow and result["decision"] not in TERMINAL and time.monotonic() < deadline:
        sleep(min(cfg.interval_s, max(deadline - time.monotonic(), 0.0)))
        result = analyse(settings, author=author, ref=ref or result["model"], cfg=cfg, client=client)
        analysed = result if result["decision"] != "not-due" else analysed
    if follow and result["decision"] not in TERMINAL:
        # the fail-closed rollback states the numbers it rests on: those of the last analysis
        result = analysed if analysed["decision"] != "not-due" else result
        numbers = {k: v for k, v in result.items() if k not in ("model", "decision", "reasons", "rollout")}
        reason = f"canary analysis: no promotion before the watch timeout of {timeout_s:g} s (fail closed)"
        result = {**result, "decision": "rollback", "reasons": [*result.get("reasons", []), reason]}
        model = result["model"]
        result["rollout"] = rollout.rollback(settings, ref=model, reason=reason, numbers=numbers, client=client)
    return result
