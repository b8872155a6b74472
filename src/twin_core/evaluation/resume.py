"""A re-run never duplicates, a killed run resumes.

- ``inputs_hash``: sha256 over everything that decides an evaluation's numbers, known before any model
  loads (both models' content hashes, the held-out rows, the configuration, the judge, the retrieved
  context, the comparison models and texts). The stored report carries it (``metadata.json``).
- ``stored_report``: the newest stored report of the same candidate with the same inputs hash that is
  ``complete`` (every answer generated, the judge ok or off, retrieval ok or absent): ``twin evaluate``
  returns it instead of a new report version and a new Comet experiment (``--force`` evaluates again). A
  report with a transient failure (the judge down, an answer or the retrieval failed) is never reused.
- ``Checkpoints``: each model's measurements (per-row values, answers, pooled style, timings), kept in
  the artifact store under ``evaluations/.resume/<inputs hash>/<role>.json`` as soon as that model is
  measured completely: a killed run (a SIGKILLed pod, Ctrl-C) re-run with the same inputs measures only
  the models it had not finished. Nothing is a report until ``write_report`` stores it, ``metadata.json``
  last, so a killed run leaves no half report.
- ``evaluate_once``: what ``twin evaluate`` and ``twin demo`` run: the stored report of the same inputs, or a
  new evaluation resumed from the checkpoints, stored.
"""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import asdict
from typing import Any

from twin_core.settings import Settings
from twin_core.stores.artifacts import open_artifact_store

log = logging.getLogger(__name__)

FORMAT = 1  # bump when what a report holds for the same inputs changes
RESUME_PREFIX = "evaluations/.resume"


def _digest(value: Any) -> str:
    return hashlib.sha256(json.dumps(value, sort_keys=True, default=str).encode()).hexdigest()


def _fingerprint(registry: Any, ref: str, location: str) -> str:
    """A registered version's content hash (its weights); the base model's location."""
    if ref.startswith("base:"):
        return location
    return str(registry.get(ref).metadata.get("content_hash") or ref)


def inputs_hash(settings: Settings, p: Any, judge_name: str, embeds: bool, hits: list[Any]) -> str:
    """What decides the report's numbers (``p`` an ``EvalPlan``), hashed; no model is loaded."""
    from twin_core import __version__
    from twin_core.llm.loading import placement
    from twin_core.llm.prompt import PROMPT_VERSION
    from twin_core.stores.registry import open_registry

    registry = open_registry(settings)
    subjects = [p.candidate, p.baseline, *p.perplexity_only]
    config = {k: v for k, v in asdict(p.config).items() if k not in ("source", "loaded")}  # numbers, not origins
    return _digest(
        {
            "format": FORMAT,
            "twin_core": __version__,
            "prompt": PROMPT_VERSION,
            "models": [(s.role, s.ref, _fingerprint(registry, s.ref, s.location)) for s in subjects],
            "dataset": p.eval_set.dataset_version,
            "rows": p.eval_set.rows,
            "prose": _digest(p.prose),
            "config": config,
            "judge": judge_name,
            "embedding": settings.embedding_model_id if embeds else None,
            "context_tokens": settings.rag.context_tokens,
            "device": placement(settings.llm.device)[0],  # CPU float32 and GPU bf16 answers may differ
            "hits": hits,
        }
    )


def complete(report: dict[str, Any]) -> bool:
    """No transient failure in ``report``: every answer generated, retrieval ok or absent, and the judge ok, off
    or failing only by its replies (none unreachable). A judge that replies without scores (the local 135M
    model, greedy) replies the same way to the same inputs: a re-run would only write the same report again."""
    answered = all(report["metrics"][role].get("answered") == report["rows"] for role in ("candidate", "baseline"))
    rag = report["rag"]
    rag_ok = rag.get("status") == "ok" or rag.get("reason") == "no vector store given"
    judge = report["judge"]  # one that failed to open made no call: not a verdict of its replies
    judged = judge["status"] in ("ok", "off") or (judge.get("unreachable", 1) == 0 and judge.get("calls", 0) > 0)
    return answered and judged and rag_ok


def report_name(author_slug: str, candidate_ref: str) -> str:
    """The artifact name of a candidate's reports: ``evaluations/<author_slug>/<vNNNN>``."""
    return f"evaluations/{author_slug}/{candidate_ref.split('/')[-1]}"


def stored_report(settings: Settings, author_slug: str, candidate_ref: str, key: str) -> dict[str, Any] | None:
    """The newest complete stored report of these inputs, as ``{"report": report.json, "stored": locations}``."""
    store = open_artifact_store(settings)
    name = report_name(author_slug, candidate_ref)
    for version in reversed(store.versions(name)):
        meta = store.get_version(name, version).metadata
        if meta.get("inputs_hash") == key and meta.get("complete"):
            report = json.loads(store.read_version_file(name, version, "report.json"))
            stored = {
                "artifact": f"{name}/{version}",
                "json": store.uri(f"{name}/{version}/report.json"),
                "html": store.uri(f"{name}/{version}/report.html"),
                "comet": report.get("comet"),
            }
            return {"report": report, "stored": stored}
    return None


class Checkpoints:
    """Each model's complete measurements, by role, under the inputs hash (``fresh``: read none, as ``--force``)."""

    def __init__(self, settings: Settings, key: str, *, fresh: bool = False) -> None:
        self.store = open_artifact_store(settings)
        self.key = key
        self.fresh = fresh

    def _key(self, role: str) -> str:
        return f"{RESUME_PREFIX}/{self.key}/{role}.json"

    def load(self, role: str) -> dict[str, Any] | None:
        if self.fresh or not self.store.exists(self._key(role)):
            return None
        log.info("resuming: the %s's measurements of these inputs are stored (%s)", role, self._key(role))
        return self.store.get_json(self._key(role))

    def save(self, role: str, measured: dict[str, Any]) -> None:
        self.store.put_json(self._key(role), measured)

    def clear(self) -> None:
        """Once a complete report of these inputs is stored, it is what a re-run returns: the models'
        measurements kept for a resume are not needed any more."""
        self.store.delete_folder(f"{RESUME_PREFIX}/{self.key}")


def judge_reached(judge: dict[str, Any]) -> None:
    """A judge that could not be reached fails the step as retryable (exit 4), with nothing stored: the gate
    would otherwise decide without the judge's metrics (optional by default) because of an outage. A judge
    that replies without scores is its verdict, not an outage: the gate decides without them and says so."""
    from twin_core.errors import BackendUnavailable

    if judge.get("unreachable"):
        raise BackendUnavailable(
            f"the judge ({judge['name']}) could not be reached ({judge['unreachable']} of {judge['calls']} calls; "
            f"{judge.get('reason') or (judge.get('errors') or ['?'])[-1]}): no report was stored and the gate did "
            "not decide; the models measured in full are kept for the retry. Retry once the judge is back, or run "
            "with --no-judge to decide without it"
        )


def evaluate_once(
    settings: Settings, p: Any, tools: Any, *, force: bool = False
) -> tuple[dict[str, Any], dict[str, Any], bool]:
    """(report, where it is stored, reused) for the plan ``p`` (an ``EvalPlan``): the stored complete report of
    the same inputs unless ``force``, else a new evaluation that resumes from a killed run's finished models,
    stored; its checkpoints are cleared once the report is complete."""
    import time

    from twin_core.evaluation.eval_report import write_report
    from twin_core.evaluation.run import prepare, record, run

    started = time.perf_counter()
    prepared = prepare(settings, p, tools)
    found = None if force else stored_report(settings, p.author_slug, p.candidate.ref, prepared.inputs_hash)
    if found is not None:
        return found["report"], found["stored"], True
    checkpoints = Checkpoints(settings, prepared.inputs_hash, fresh=force)
    report = record(p, run(settings, p, tools, prepared, checkpoints), started).as_dict()
    judge_reached(report["judge"])
    stored = write_report(settings, report)
    if complete(report):  # the stored report is what a re-run returns now
        checkpoints.clear()
    return report, stored, False
