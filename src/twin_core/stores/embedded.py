"""No embedded store in kubernetes mode.

An embedded store (litemongo, Qdrant local mode, the local artifacts folder) lives under TWIN_HOME. In a
pod that is scratch space (an emptyDir, or the training profiles' ephemeral volume) deleted with the pod:
a step that fell back to it would "succeed" and lose everything it wrote. The store addresses reach the
pods through ``envFrom`` from the settings ConfigMap and an *optional* Secret, so a missing Secret or key
leaves a variable unset without any error from Kubernetes. Each ``open_*`` factory therefore calls
``refuse_in_pod`` before it opens an embedded store: only the stores a command opens must be configured
(``twin serve --component predictor`` never needs the vector store), and settings still load for
commands that need none.
"""

from __future__ import annotations

from twin_core.errors import ConfigError
from twin_core.settings import Settings

# The variable selecting each store's server -> (the setting behind it, the embedded store it replaces).
SERVER_VARIABLES: dict[str, tuple[str, str]] = {
    "TWIN_MONGODB_URI": ("mongodb_uri", "warehouse (litemongo)"),
    "TWIN_QDRANT_URL": ("qdrant_url", "vector store (Qdrant local mode)"),
    "TWIN_ARTIFACTS_URI": ("artifacts_uri", "artifact store (a local folder)"),
}
# Where task and serving pods get them (configs/execution.yaml `config_map` and `secret`; the chart's
# `tasks.configMapName` and `secrets.existingSecret`).
SETTINGS_CONFIG_MAP = "llm-twin-settings"
CREDENTIALS_SECRET = "llm-twin-secrets"


def missing_server_variables(settings: Settings) -> list[str]:
    """The store variables left unset, in the order of ``SERVER_VARIABLES``."""
    return [name for name, (field, _) in SERVER_VARIABLES.items() if not getattr(settings, field)]


def refuse_in_pod(settings: Settings, variable: str) -> None:
    """In kubernetes mode, a ConfigError instead of the embedded store that unset ``variable`` selects.

    The message names every unset store variable (the one this store needs first), why, and where a pod
    gets them. Local mode: nothing (the embedded stores are its default)."""
    if settings.execution != "kubernetes":
        return
    missing = [variable, *(name for name in missing_server_variables(settings) if name != variable)]
    store = SERVER_VARIABLES[variable][1]
    raise ConfigError(
        f"{', '.join(missing)}: unset in kubernetes mode, and the embedded {store} would live under TWIN_HOME "
        f"({settings.home}), deleted with the pod: refused, nothing written. Pods get these variables from the "
        f"ConfigMap {SETTINGS_CONFIG_MAP} and the optional Secret {CREDENTIALS_SECRET}: check both exist in "
        f"the pod's namespace with these keys (docs/deploy.md). Outside a pod, set TWIN_EXECUTION=local."
    )
