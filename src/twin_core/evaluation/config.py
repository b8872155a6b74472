"""configs/evaluation.yaml: sample sizes, judge limits and the gate rules."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import yaml

from twin_core.errors import ConfigError, InputError
from twin_core.settings import Settings

_REPO_CONFIG = Path(__file__).resolve().parents[3] / "configs" / "evaluation.yaml"
RULE_KEYS = {"better", "max_ratio", "min_delta", "min", "max", "decide", "required"}
# every per-row metric the evaluation measures: the only names a gate rule may use
METRICS = (
    "perplexity",
    "topic_similarity",
    "rouge_l",
    "style_distance",
    "attribution",
    "judge_accuracy",
    "judge_style",
    "groundedness",
)
SECTIONS = {
    "samples": {"max_rows", "min_rows", "batch_size", "max_new_tokens", "perplexity_max_length"},
    "rag": {"k"},
    "judge": {"max_new_tokens", "max_consecutive_failures"},
    "gate": {"bootstrap_resamples", "confidence", "metrics"},
}
CLI_OPTIONS = {"max_rows": "--max-rows", "min_rows": "--min-rows"}  # fields `twin evaluate` may override


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
    overridden: tuple[str, ...] = ()  # fields set on the command line (see with_options)
    loaded: tuple[tuple[str, int], ...] = ()  # the sample sizes as read from ``source``

    def origin(self, name: str) -> str:
        """Where a sample size came from, for messages: the CLI option, the config file's key, the default,
        or (a value changed in code, e.g. the demo's) the caller."""
        if name in self.overridden and name in CLI_OPTIONS:
            return CLI_OPTIONS[name]
        if self.source == "defaults":
            default = EvalConfig.__dataclass_fields__[name].default
            return "the default" if getattr(self, name) == default else "set by the caller"
        if dict(self.loaded).get(name) != getattr(self, name):
            return "set by the caller"
        return f"samples.{name} in {self.source}"

    def with_options(self, max_rows: int | None = None, min_rows: int | None = None) -> EvalConfig:
        """The sample sizes given on the command line, checked before any model loads: InputError (exit 3)
        when they leave fewer rows than the gate may decide on (max_rows, 0 = all, below min_rows)."""
        changes = {k: v for k, v in (("max_rows", max_rows), ("min_rows", min_rows)) if v is not None}
        cfg = replace(self, **changes, overridden=tuple(dict.fromkeys(self.overridden + tuple(changes))))
        problem = rows_problem(
            cfg,
            f"max_rows {cfg.max_rows} ({cfg.origin('max_rows')})",
            f"min_rows {cfg.min_rows} ({cfg.origin('min_rows')})",
        )
        if problem:
            raise InputError(problem)
        return cfg


def rows_problem(cfg: EvalConfig, max_label: str, min_label: str) -> str | None:
    """What is wrong with ``cfg``'s row counts (labelled as the user gave them), or None."""
    if cfg.min_rows < 1:
        return f"{min_label}: the gate needs at least 1 row"
    if cfg.max_rows < 0:
        return f"{max_label}: expected 0 (all rows) or more"
    if 0 < cfg.max_rows < cfg.min_rows:
        return (
            f"{max_label} is below {min_label}, the fewest rows the gate decides on: raise max_rows (0 = all rows) "
            "or lower min_rows"
        )
    return None


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


def _mapping(value: Any, what: str, origin: str) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise ConfigError(f"{origin}: {what} must be a mapping (got {type(value).__name__})")
    return value


def _number(section: str, data: dict[str, Any], key: str, default: float, kind: type, origin: str) -> Any:
    value = data.get(key, default)
    try:
        if isinstance(value, bool):
            raise TypeError
        return kind(value)
    except (TypeError, ValueError):
        raise ConfigError(f"{origin}: {section}.{key} must be a number (got {value!r})") from None


def load_eval_config(settings: Settings, path: Path | None = None) -> EvalConfig:
    """The evaluation config: TWIN_EVAL_CONFIG, else the repository's configs/evaluation.yaml. ConfigError
    (exit 2, naming the file and the key) when it is not a mapping, has an unknown section, key or metric,
    or a value out of range: checked here, before any model loads."""
    path = path or settings.eval.config or (_REPO_CONFIG if _REPO_CONFIG.is_file() else None)
    if path is None:
        return EvalConfig()
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"TWIN_EVAL_CONFIG: {path} does not exist")
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from None
    origin = str(path)
    sections = _sections(data, origin)
    samples, rag, judge, gate = (sections[k] for k in ("samples", "rag", "judge", "gate"))
    metrics = _mapping(gate.get("metrics"), "gate.metrics", origin)
    for name in metrics:
        if name not in METRICS:
            raise ConfigError(f"{origin}: gate.metrics.{name}: unknown metric (known: {', '.join(METRICS)})")
    rules = tuple(_rule(name, spec, origin) for name, spec in metrics.items())

    def num(section: str, values: dict[str, Any], key: str, default: float, kind: type = int) -> Any:
        return _number(section, values, key, default, kind, origin)

    cfg = EvalConfig(
        max_rows=num("samples", samples, "max_rows", 40),
        min_rows=num("samples", samples, "min_rows", 20),
        batch_size=max(1, num("samples", samples, "batch_size", 8)),
        max_new_tokens=num("samples", samples, "max_new_tokens", 64),
        perplexity_max_length=num("samples", samples, "perplexity_max_length", 512),
        rag_k=num("rag", rag, "k", 5),
        judge_max_new_tokens=num("judge", judge, "max_new_tokens", 160),
        judge_max_failures=num("judge", judge, "max_consecutive_failures", 3),
        bootstrap_resamples=num("gate", gate, "bootstrap_resamples", 2000),
        confidence=num("gate", gate, "confidence", 0.95, float),
        rules=rules,
        source=origin,
    )
    return _in_range(replace(cfg, loaded=(("max_rows", cfg.max_rows), ("min_rows", cfg.min_rows))), origin)


def _sections(data: Any, origin: str) -> dict[str, dict[str, Any]]:
    """The config's sections, each a mapping with known keys only (a typo is an error, not a silent default)."""
    data = _mapping(data, f"the file (sections {', '.join(SECTIONS)})", origin)
    unknown = sorted(set(data) - set(SECTIONS))
    if unknown:
        raise ConfigError(f"{origin}: unknown sections {unknown} (allowed: {sorted(SECTIONS)})")
    sections = {name: _mapping(data.get(name), name, origin) for name in SECTIONS}
    for name, keys in SECTIONS.items():
        unknown = sorted(set(sections[name]) - keys)
        if unknown:
            raise ConfigError(f"{origin}: {name}: unknown keys {unknown} (allowed: {sorted(keys)})")
    return sections


def _in_range(cfg: EvalConfig, origin: str) -> EvalConfig:
    """``cfg`` if its numbers make sense together; else a ConfigError naming the key."""
    if not 0 < cfg.confidence < 1:
        raise ConfigError(f"{origin}: gate.confidence must be between 0 and 1, e.g. 0.95 (got {cfg.confidence!r})")
    problem = rows_problem(cfg, f"samples.max_rows {cfg.max_rows}", f"samples.min_rows {cfg.min_rows}")
    if problem:
        raise ConfigError(f"{origin}: {problem}")
    return cfg
