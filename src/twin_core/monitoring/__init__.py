"""Drift monitoring: Evidently reports over the inference log and newly collected documents.

- ``windows``: the time window a check covers and its key in the artifact store;
- ``config``: the signals, their Evidently methods and thresholds (configs/monitoring.yaml);
- ``reference``: what a window is compared with (training instructions, previous windows, training corpus);
- ``drift``: builds the Evidently datasets and reports, decides which signals drifted;
- ``reports``: writes HTML + JSON to ``monitoring/<author>/<window>/`` and keeps the alert marker.

Imports only stores, domain, settings and errors. The text tools (embedder, language detector,
vocabulary) are injected by the caller (the CLI), so this package never loads a model by itself.
"""

from twin_core.monitoring.drift import LazyTextTools, TextTools, run_drift_check
from twin_core.monitoring.windows import Window, parse_window

__all__ = ["LazyTextTools", "TextTools", "Window", "parse_window", "run_drift_check"]
