"""Kubernetes mode: the pod operator every `twin` step runs in, shaped by an execution profile.

The profile (configs/execution.yaml: image, resources, GPU node pool, /dev/shm, scratch volume) is an
ordinary constructor argument, so a mapped task can take it per mapped instance
(``.expand_kwargs([{"arguments": [...], "profile": "gpu-multi"}])``): the run's planning task chooses
it from the form or the Asset event, and the pod is built from it when the task runs.
"""

from __future__ import annotations

from typing import Any

from airflow.providers.cncf.kubernetes.operators.pod import KubernetesPodOperator


class TwinPodOperator(KubernetesPodOperator):
    """``twin <arguments>`` in a pod of the execution profile ``profile``."""

    def __init__(self, *, profile: str = "cpu", **kwargs: Any) -> None:
        from twin_ops.factory import pod_kwargs

        super().__init__(**{**pod_kwargs(kwargs["task_id"], profile), **kwargs})
        self.profile = profile
