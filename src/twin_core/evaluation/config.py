"""configs/evaluation.yaml: sample sizes, judge limits and the gate rules."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from twin_core.errors import ConfigError
from twin_core.settings import Settings

_REPO_CONFIG = Path(__file__).resolve().parents[3] / "configs" / "evaluation.yaml"
RULE_KEYS = {"better", "max_ratio", "min_delta", "min", "max", "decide", "required"}


@dataclass(frozen=True)
class Rule:
    metric: str
    better: str  # "higher" | "lower"
    max_ratio: float | None = None
    min_delta: float | None = None
    min: float | None = None
    max: float | None = None
    decide: str = "not_worse"  # "not_worse": the CI's worst end within the tolerance | "better": the whole CI good
    required: bool = True  # a required metric that was not measured fails the gate; an optional one is skipped

    def describe(self) -> str:
        parts = []
        if self.max_ratio is not None:
            parts.append(f"<= baseline x {self.max_ratio:g}")
        if self.min_delta is not None:
            parts.append(f">= baseline {'+' if self.min_delta >= 0 else '-'} {abs(self.min_delta):g}")
        if self.min is not None:
            parts.append(f">= {self.min:g}")
        if self.max is not None:
            parts.append(f"<= {self.max:g}")
        if self.decide == "better":
            parts.append(f"CI wholly {self.better}")
        return " and ".join(parts)


@dataclass(frozen=True)
class EvalConfig:
    max_rows: int = 40
    min_rows: int = 20
    max_new_tokens: int = 64
    perplexity_max_length: int = 512
    rag_k: int = 5
    judge_max_new_tokens: int = 160
    judge_max_failures: int = 3
    batch_size: int = 8
    bootstrap_resamples: int = 2000
    confidence: float = 0.95
    rules: tuple[Rule, ...] = field(default_factory=tuple)
    source: str = "defaults"


def _rule(name: str, spec: Any, origin: str) -> Rule:
    if not isinstance(spec, dict):
        raise ConfigError(f"{origin}: gate rule {name!r} must be a mapping")
    unknown = set(spec) - RULE_KEYS
    if unknown:
        raise ConfigError(
            f"{origin}: gate rule {name!r}: unknown keys {sorted(unknown)} (allowed: {sorted(RULE_KEYS)})"
        )
    better = spec.get("better", "higher")
    if better not in ("higher", "lower"):
        raise ConfigError(f"{origin}: gate rule {name!r}: better must be higher or lower (got {better!r})")
    decide = spec.get("decide", "not_worse")
    if decide not in ("not_worse", "better"):
        raise ConfigError(f"{origin}: gate rule {name!r}: decide must be not_worse or better (got {decide!r})")
    if decide == "not_worse" and not any(k in spec for k in ("max_ratio", "min_delta", "min", "max")):
        raise ConfigError(f"{origin}: gate rule {name!r} has no bound (max_ratio, min_delta, min or max)")
    if spec.get("max_ratio") is not None and better != "lower":
        raise ConfigError(f"{origin}: gate rule {name!r}: max_ratio is for better: lower")
    try:
        values = {k: float(spec[k]) for k in ("max_ratio", "min_delta", "min", "max") if spec.get(k) is not None}
    except (TypeError, ValueError):
        raise ConfigError(f"{origin}: gate rule {name!r}: bounds must be numbers") from None
    return Rule(metric=name, better=better, decide=decide, required=bool(spec.get("required", True)), **values)


def load_eval_config(settings: Settings, path: Path | None = None) -> EvalConfig:
    """The evaluation config: TWIN_EVAL_CONFIG, else the repository's configs/evaluation.yaml."""
    path = path or settings.eval.config or (_REPO_CONFIG if _REPO_CONFIG.is_file() else None)
    if path is None:
        return EvalConfig()
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"TWIN_EVAL_CONFIG: {path} does not exist")
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from None
    samples, rag, judge, gate = (data.get(k) or {} for k in ("samples", "rag", "judge", "gate"))
    rules = tuple(_rule(name, spec, str(path)) for name, spec in (gate.get("metrics") or {}).items())
    try:
        return EvalConfig(
            max_rows=int(samples.get("max_rows", 40)),
            min_rows=int(samples.get("min_rows", 20)),
            batch_size=max(1, int(samples.get("batch_size", 8))),
            max_new_tokens=int(samples.get("max_new_tokens", 64)),
            perplexity_max_length=int(samples.get("perplexity_max_length", 512)),
            rag_k=int(rag.get("k", 5)),
            judge_max_new_tokens=int(judge.get("max_new_tokens", 160)),
            judge_max_failures=int(judge.get("max_consecutive_failures", 3)),
            bootstrap_resamples=int(gate.get("bootstrap_resamples", 2000)),
            confidence=float(gate.get("confidence", 0.95)),
            rules=rules,
            source=str(path),
        )
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{path}: {exc}") from None
