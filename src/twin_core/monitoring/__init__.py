"""Drift monitoring: Evidently reports over the inference log and newly collected documents.

- ``windows``: the time window a check covers and its key in the artifact store;
- ``config``: the signals, their Evidently methods, statistics and thresholds (configs/monitoring.yaml);
- ``reference``: the training data (instruct dataset, training corpus) for the informational report;
- ``scopes``: the rows each scope compares (window vs recent traffic, or vs the training data);
- ``text_tools``: the injected embedder / language detector / vocabulary and the out-of-vocabulary share;
- ``evidently_metrics``: Evidently's ValueDrift and embeddings drift (t-SNE plots only with ``plots``);
- ``drift``: the check as plan -> run -> record, the verdict and the alerts;
- ``evidently_reports``: writes HTML + JSON to ``monitoring/<author>/<window>/`` and keeps the alert marker.

Imports only stores, domain, settings and errors. The text tools are injected by the caller (the CLI),
so this package never loads a model by itself.
"""

from twin_core.monitoring.drift import plan_drift_check, run_drift_check
from twin_core.monitoring.text_tools import LazyTextTools, TextTools
from twin_core.monitoring.windows import Window, parse_window

__all__ = ["LazyTextTools", "TextTools", "Window", "parse_window", "plan_drift_check", "run_drift_check"]
