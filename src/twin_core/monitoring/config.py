"""The drift signals: which column, which Evidently method, which threshold (configs/monitoring.yaml)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from twin_core.errors import ConfigError
from twin_core.settings import Settings

SCOPES = ("queries", "answers", "operations", "documents")
KINDS = ("embedding", "length", "oov", "language", "numeric", "category")
# Evidently drift methods whose score is a p-value: drift when the score is BELOW the threshold.
PVALUE_METHODS = frozenset(
    {"ks", "chisquare", "z", "t_test", "mannw", "fisher_exact", "cramer_von_mises", "anderson", "g_test", "es"}
)
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

    @property
    def pvalue(self) -> bool:
        return self.kind != "embedding" and self.method in PVALUE_METHODS

    def drifted(self, score: float) -> bool:
        return score < self.threshold if self.pvalue else score > self.threshold

    @property
    def statistic(self) -> str:
        """What the score is, in words (alerts carry it next to the sample sizes)."""
        if self.kind == "embedding":
            if self.method == "model":
                return "ROC AUC of a classifier telling reference from current embeddings"
            return f"{self.dist} distance between the mean embeddings"
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
    ("error_rate", "operations", "outcome", "category", "jensenshannon", 0.3),
    ("document_embedding", "documents", "text", "embedding", "distance", 0.5),
    ("document_length", "documents", "text", "length", "ks", 0.05),
]
DEFAULTS: dict[str, dict[str, Any]] = {
    row[0]: dict(zip(("scope", "column", "kind", "method", "threshold"), row[1:], strict=True)) for row in _DEFAULT_ROWS
}


def _signal(name: str, spec: Any, origin: str) -> Signal:
    if not isinstance(spec, dict):
        raise ConfigError(f"{origin}: signal {name!r} must be a mapping")
    try:
        sig = Signal(
            name=name,
            scope=str(spec["scope"]),
            column=str(spec["column"]),
            kind=str(spec["kind"]),
            method=str(spec["method"]),
            threshold=float(spec["threshold"]),
            dist=str(spec.get("dist", "cosine")),
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise ConfigError(f"{origin}: signal {name!r} needs scope, column, kind, method, threshold ({exc})") from None
    if sig.scope not in SCOPES or sig.kind not in KINDS:
        raise ConfigError(f"{origin}: signal {name!r}: scope must be one of {SCOPES}, kind one of {KINDS}")
    if sig.kind == "embedding" and sig.method not in ("distance", "model"):
        raise ConfigError(f"{origin}: signal {name!r}: embedding method must be distance or model")
    return sig


def load_signals(settings: Settings) -> list[Signal]:
    path = settings.monitor.config or (_REPO_CONFIG if _REPO_CONFIG.is_file() else None)
    if path is None:
        return [_signal(n, s, "built-in signals") for n, s in DEFAULTS.items()]
    origin = f"TWIN_MONITOR_CONFIG {path}"
    try:
        data = yaml.safe_load(Path(path).read_text(encoding="utf-8")) or {}
    except FileNotFoundError:
        raise ConfigError(f"{origin} does not exist") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{origin} is not valid YAML: {exc}") from None
    signals = data.get("signals") if isinstance(data, dict) else None
    if not isinstance(signals, dict) or not signals:
        raise ConfigError(f"{origin}: expected a 'signals' mapping")
    return [_signal(n, s, origin) for n, s in signals.items()]
