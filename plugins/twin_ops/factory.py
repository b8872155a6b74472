"""One factory builds every DAG task from a `twin …` command and a resource profile.

- ``TWIN_EXECUTION=kubernetes``: a KubernetesPodOperator (``pod_operator.py``) with the profile's
  image, resources, GPU node pool (gpu), settings and secrets through ``envFrom`` (``pod_spec.py``),
  and the result read from ``/airflow/xcom/return.json``.
- ``TWIN_EXECUTION=local``: a TwinLocalOperator running the same command as a subprocess.

The DAG graph is the same in both modes.
"""

from __future__ import annotations

from typing import Any

from twin_ops.config import execution_mode, profile

# Local mode: the embedded Qdrant (TWIN_HOME/qdrant) admits one process at a time. Every step that opens
# it runs in this one-slot Airflow pool, so two DAG runs never collide on its lock. `make airflow` and
# the tests create it (scripts/airflow_local.py); in kubernetes mode steps use a Qdrant server, no pool.
EMBEDDED_QDRANT_POOL = "twin_embedded_qdrant"
EMBEDDED_QDRANT_POOL_DESCRIPTION = "LLM Twin local mode: steps using the embedded Qdrant, one at a time"


def _operator_and_kwargs(profile_name: str | None, qdrant: bool) -> tuple[type, dict[str, Any]]:
    """The operator class of the mode and its fixed arguments; no ``profile`` when the run chooses it."""
    base: dict[str, Any] = {}
    if profile_name is not None:
        profile(profile_name)  # validate the profile name in both modes
        base["profile"] = profile_name
    if execution_mode() == "kubernetes":
        from twin_ops.pod_operator import TwinPodOperator

        return TwinPodOperator, base
    from twin_ops.local_operator import TwinLocalOperator

    return TwinLocalOperator, {**base, **({"pool": EMBEDDED_QDRANT_POOL} if qdrant else {})}


def twin_step(task_id: str, arguments: list[str], *, profile: str = "cpu", qdrant: bool = False, **kwargs: Any) -> Any:
    """A task running ``twin <arguments>`` (arguments are templated).

    ``qdrant=True`` marks a step that opens the feature store: in local mode it runs in the one-slot
    pool ``EMBEDDED_QDRANT_POOL``. ``deployer=True`` (a keyword of both operators) runs a `twin deploy`
    step's pod with Kubernetes API access (``pod_spec.pod_kwargs``); local mode ignores it."""
    cls, base = _operator_and_kwargs(profile, qdrant)
    return cls(task_id=task_id, arguments=arguments, **base, **kwargs)


def twin_step_mapped(task_id: str, *, profile: str | None = "cpu", qdrant: bool = False, **kwargs: Any) -> Any:
    """A partial task to ``.expand(arguments=...)`` over a list of argument lists (``qdrant`` as above).

    ``profile=None``: the run chooses the pod profile, per mapped instance, with
    ``.expand_kwargs([{"arguments": [...], "profile": name}, ...])`` (e.g. the training profile of the form)."""
    cls, base = _operator_and_kwargs(profile, qdrant)
    return cls.partial(task_id=task_id, **base, **kwargs)
