"""The drift signals: which column, which Evidently method, which threshold (configs/monitoring.yaml)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from twin_core.errors import ConfigError
from twin_core.monitoring.permutation import PERMUTATIONS
from twin_core.settings import Settings

SCOPES = ("queries", "answers", "operations", "documents")
KINDS = ("embedding", "length", "oov", "language", "numeric", "category", "rate", "coverage")
# The columns each scope's frame has (scopes.py): a signal names one of its scope's.
SCOPE_COLUMNS = {
    "queries": ("query",),
    "answers": ("answer",),
    "operations": ("retrieval_score", "latency_ms", "outcome", "retrieved"),
    "documents": ("text",),
}
# The value type Evidently's stattests see for each value kind (text descriptors are numbers or categories).
VALUE_TYPES = {"length": "num", "oov": "num", "numeric": "num", "language": "cat", "category": "cat"}
# Evidently 0.7's drift stattests (the registry of evidently.legacy.calculations.stattests): the value types
# each accepts and whether its score is a p-value (drift when BELOW the threshold) or a distance (ABOVE).
# A static copy: importing Evidently takes seconds and a bad method must fail at load, before any model;
# tests/monitoring/test_drift_config.py keeps it equal to the registry. Its two text-content tests take
# raw text, which no signal kind passes, so they are left out.
STATTESTS: dict[str, tuple[frozenset[str], bool]] = {
    "anderson": (frozenset({"num"}), True),
    "chisquare": (frozenset({"cat"}), True),
    "cramer_von_mises": (frozenset({"num"}), True),
    "ed": (frozenset({"num"}), False),
    "empirical_mmd": (frozenset({"num"}), True),
    "es": (frozenset({"num"}), True),
    "fisher_exact": (frozenset({"cat"}), True),
    "g_test": (frozenset({"cat"}), True),
    "hellinger": (frozenset({"cat", "num"}), False),
    "jensenshannon": (frozenset({"cat", "num"}), False),
    "kl_div": (frozenset({"cat", "num"}), False),
    "ks": (frozenset({"num"}), True),
    "mannw": (frozenset({"num"}), True),
    "psi": (frozenset({"cat", "num"}), False),
    "t_test": (frozenset({"num"}), True),
    "TVD": (frozenset({"cat"}), True),
    "wasserstein": (frozenset({"num"}), False),
    "z": (frozenset({"cat"}), True),
}
TEXT_STATTESTS = ("abs_text_content_drift", "perc_text_content_drift")  # raw text only: no signal kind
PVALUE_METHODS = frozenset(name for name, (_, pvalue) in STATTESTS.items() if pvalue)
# Bounded distances: a threshold at or above the largest possible score never fires. Evidently's
# Jensen-Shannon distance uses the natural log (at most sqrt(ln 2)); Hellinger is at most 1.
MAX_DISTANCE = {"jensenshannon": math.sqrt(math.log(2)), "hellinger": 1.0}
# Embeddings: Evidently's embeddings-drift methods and the distances of DistanceDriftMethod.
EMBEDDING_METHODS = ("distance", "model")
EMBEDDING_DISTANCES = ("cosine", "euclidean", "cityblock", "chebyshev")
# Rates (the server error rate): a one-sided decision on the increase of a proportion.
RATE_METHODS = ("newcombe",)
# Coverage (the share of the requests the server answered, ok, that retrieved a chunk): decided on the window
# alone, never against the reference (a retrieval that is broken in both windows is still broken).
COVERAGE_METHODS = ("wilson",)
# the kinds that count requests: kind -> (the column they read, their methods)
COUNTED_KINDS = {"rate": ("outcome", RATE_METHODS), "coverage": ("retrieved", COVERAGE_METHODS)}
ABSOLUTE_KINDS = frozenset({"coverage"})
_KEYS = ("scope", "column", "kind", "method", "threshold", "dist", "confidence")
_REPO_CONFIG = Path(__file__).resolve().parents[3] / "configs" / "monitoring.yaml"


@dataclass(frozen=True)
class Signal:
    name: str
    scope: str
    column: str
    kind: str
    method: str
    threshold: float
    dist: str = "cosine"  # embeddings, method "distance"
    # rates, coverage: the two-sided level of the interval; distances: 1 - the alpha of their permutation test
    confidence: float = 0.95

    @property
    def pvalue(self) -> bool:
        return self.kind in VALUE_TYPES and self.method in PVALUE_METHODS

    @property
    def below(self) -> bool:
        """Drifts when the score is below the threshold (p-values, coverage); else above it."""
        return self.pvalue or self.kind == "coverage"

    @property
    def absolute(self) -> bool:
        """Decided on the window alone: the reference is reported, never required."""
        return self.kind in ABSOLUTE_KINDS

    @property
    def permuted(self) -> bool:
        """A distance (or an embedding's ROC AUC): its uncertainty is a permutation test's p-value."""
        return self.kind == "embedding" or (self.kind in VALUE_TYPES and not self.pvalue)

    @property
    def alpha(self) -> float:
        """A distance drifts only when its permutation p-value is below this (1 - confidence)."""
        return round(1 - self.confidence, 12)

    def drifted(self, score: float, p_value: float | None = None) -> bool | None:
        """Beyond the threshold; a distance also needs its permutation ``p_value`` below ``alpha`` (None,
        undecided, when a distance above its threshold has no p-value)."""
        if self.below:
            return score < self.threshold
        if score <= self.threshold or not self.permuted:
            return score > self.threshold
        return None if p_value is None else p_value < self.alpha

    @property
    def statistic(self) -> str:
        """What the score is, in words (alerts carry it next to the sample sizes)."""
        if self.kind == "embedding":
            if self.method == "model":
                return "ROC AUC of a classifier telling reference from current embeddings"
            return f"{self.dist} distance between the mean embeddings"
        if self.kind == "rate":
            return (
                f"lower bound of the {self.confidence * 100:g}% Newcombe interval of the increase in the server "
                "error rate (current - reference)"
            )
        if self.kind == "coverage":
            return (
                f"upper bound of the {self.confidence * 100:g}% Wilson interval of the share of the requests the "
                "server answered that retrieved a chunk"
            )
        if self.pvalue:
            return f"{self.method} test p-value"
        if self.method == "wasserstein":
            return "Wasserstein distance in reference standard deviations"
        return f"{self.method} distance"

    @property
    def feature(self) -> str:
        """The column Evidently's drift metric looks at (a descriptor's alias for derived signals)."""
        if self.kind in ("length", "oov", "language"):
            return f"{self.column}_{self.kind}"
        return self.column


# The same values as configs/monitoring.yaml (why these thresholds: there): used when no file is found.
_DEFAULT_ROWS = [
    # name, scope, column, kind, method, threshold
    ("query_embedding", "queries", "query", "embedding", "distance", 0.35),
    ("query_length", "queries", "query", "length", "wasserstein", 1.0),
    ("query_oov_share", "queries", "query", "oov", "wasserstein", 1.0),
    ("query_language", "queries", "query", "language", "jensenshannon", 0.4),
    ("answer_length", "answers", "answer", "length", "wasserstein", 1.0),
    ("answer_oov_share", "answers", "answer", "oov", "wasserstein", 1.0),
    ("answer_language", "answers", "answer", "language", "jensenshannon", 0.4),
    ("retrieval_score", "operations", "retrieval_score", "numeric", "wasserstein", 1.0),
    ("latency_ms", "operations", "latency_ms", "numeric", "wasserstein", 1.0),
    ("error_rate", "operations", "outcome", "rate", "newcombe", 0.02),
    ("retrieval_coverage", "operations", "retrieved", "coverage", "wilson", 0.5),
    ("document_embedding", "documents", "text", "embedding", "distance", 0.5),
    ("document_length", "documents", "text", "length", "ks", 0.05),
]
DEFAULTS: dict[str, dict[str, Any]] = {
    row[0]: dict(zip(("scope", "column", "kind", "method", "threshold"), row[1:], strict=True)) for row in _DEFAULT_ROWS
}


def _number(value: Any) -> float:
    if isinstance(value, bool):  # YAML yes/no/true: not a number
        raise ValueError(f"{value!r} is not a number")
    return float(value)


def _signal(name: str, spec: Any, origin: str) -> Signal:
    """One signal of the config, checked (scope, column, kind, method, threshold range) or a ConfigError
    naming the file, the signal and the allowed values."""
    if not isinstance(spec, dict):
        raise ConfigError(f"{origin}: signal {name!r} must be a mapping")
    unknown = sorted(str(k) for k in spec if k not in _KEYS)
    if unknown:
        raise ConfigError(f"{origin}: signal {name!r}: unknown key(s) {unknown}; allowed: {', '.join(_KEYS)}")
    try:
        sig = Signal(
            name=name,
            scope=str(spec["scope"]),
            column=str(spec["column"]),
            kind=str(spec["kind"]),
            method=str(spec["method"]),
            threshold=_number(spec["threshold"]),
            dist=str(spec.get("dist", "cosine")),
            confidence=_number(spec.get("confidence", 0.95)),
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise ConfigError(f"{origin}: signal {name!r} needs scope, column, kind, method, threshold ({exc})") from None
    if sig.scope not in SCOPES or sig.kind not in KINDS:
        raise ConfigError(f"{origin}: signal {name!r}: scope must be one of {SCOPES}, kind one of {KINDS}")
    if sig.column not in SCOPE_COLUMNS[sig.scope]:
        allowed = ", ".join(SCOPE_COLUMNS[sig.scope])
        raise ConfigError(f"{origin}: signal {name!r}: column {sig.column!r} is not in scope {sig.scope} ({allowed})")
    problem = _method_problem(sig) or _threshold_problem(sig)
    if problem:
        raise ConfigError(f"{origin}: signal {name!r}: {problem}")
    return sig


def _method_problem(sig: Signal) -> str | None:
    """Why the signal's method does not fit its kind (None when it does)."""
    if sig.kind == "embedding":
        if sig.method not in EMBEDDING_METHODS:
            return f"embedding method {sig.method!r}: expected one of {', '.join(EMBEDDING_METHODS)}"
        if sig.method == "distance" and sig.dist not in EMBEDDING_DISTANCES:
            return f"dist {sig.dist!r}: expected one of {', '.join(EMBEDDING_DISTANCES)}"
        return None
    if sig.kind in COUNTED_KINDS:  # a share of requests: one column, its own methods
        column, methods = COUNTED_KINDS[sig.kind]
        if sig.column != column:
            return f"a {sig.kind} reads the column {column!r}, not {sig.column!r}"
        if sig.method not in methods:
            return f"{sig.kind} method {sig.method!r}: expected one of {', '.join(methods)}"
        return None
    value_type = VALUE_TYPES[sig.kind]
    allowed = sorted(name for name, (types, _) in STATTESTS.items() if value_type in types)
    if sig.method not in allowed:
        return f"method {sig.method!r} for a {sig.kind} signal ({value_type}): expected one of {', '.join(allowed)}"
    return None


def _threshold_problem(sig: Signal) -> str | None:
    """Why the threshold (or the confidence) can never make a sound decision (None when it can)."""
    t = sig.threshold
    for key, value in (("threshold", t), ("confidence", sig.confidence)):
        if not math.isfinite(value):
            return f"{key} {value}: expected a finite number"
    if sig.kind in ("rate", "coverage") and not 0.5 < sig.confidence < 1:
        return f"confidence {sig.confidence}: expected 0.5 < confidence < 1"
    if sig.permuted and not 0.5 < sig.confidence < 1 - 1 / (PERMUTATIONS + 1):
        top = 1 - 1 / (PERMUTATIONS + 1)
        return (
            f"confidence {sig.confidence}: expected 0.5 < confidence < {top:g} (its alpha must be above the "
            f"smallest p-value of {PERMUTATIONS} permutations, 1/{PERMUTATIONS + 1})"
        )
    if sig.kind == "rate":
        ok, need = 0 <= t < 1, "a minimum increase of the rate, 0 <= threshold < 1"
    elif sig.kind == "coverage":
        ok, need = 0 < t < 1, "a share of the requests, 0 < threshold < 1"
    elif sig.kind == "embedding" and sig.method == "model":
        ok, need = 0.5 < t < 1, "a ROC AUC, 0.5 < threshold < 1 (0.5 is chance)"
    elif sig.pvalue:
        ok, need = 0 < t < 1, "a p-value, 0 < threshold < 1"
    else:
        top = MAX_DISTANCE.get(sig.method, 2.0 if sig.kind == "embedding" and sig.dist == "cosine" else math.inf)
        ok, need = 0 < t < top, f"a distance, 0 < threshold < {top:.4g}"
    return None if ok else f"threshold {t} for method {sig.method!r}: expected {need}"


def load_signals(settings: Settings) -> list[Signal]:
    path = settings.monitor.config or (_REPO_CONFIG if _REPO_CONFIG.is_file() else None)
    if path is None:
        return [_signal(n, s, "built-in signals") for n, s in DEFAULTS.items()]
    origin = f"TWIN_MONITOR_CONFIG {path}"
    try:
        data = yaml.safe_load(Path(path).read_text(encoding="utf-8")) or {}
    except FileNotFoundError:
        raise ConfigError(f"{origin} does not exist") from None
    except (OSError, UnicodeDecodeError) as exc:  # a folder, no permission, not UTF-8 text: still the setting's fault
        raise ConfigError(f"{origin} cannot be read as a UTF-8 YAML file: {exc}") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{origin} is not valid YAML: {exc}") from None
    signals = data.get("signals") if isinstance(data, dict) else None
    if not isinstance(signals, dict) or not signals:
        raise ConfigError(f"{origin}: expected a 'signals' mapping")
    return [_signal(n, s, origin) for n, s in signals.items()]
