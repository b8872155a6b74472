"""Kubernetes mode: the pod operator every `twin` step runs in, shaped by an execution profile.

The profile (configs/execution.yaml: image, resources, GPU node pool, /dev/shm, scratch volume) is an
ordinary constructor argument, so a mapped task can take it per mapped instance
(``.expand_kwargs([{"arguments": [...], "profile": "gpu-multi"}])``): the run's planning task chooses
it from the form or the Asset event, and the pod is built from it when the task runs.

A failed pod is read like a failed local step: the base container's exit code 2 (config) or 3 (bad
input) fails the task at once (``TwinStepRejected``, no retry) with the step's JSON error; any other
exit code (1 unexpected, 4 backend unavailable) keeps KubernetesPodOperator's failure and the task's
retries. The error comes from the step's XCom (``return.json``, written on failure too) or else from
the container's termination message: ``FallbackToLogsOnError`` puts the tail of the pod log, whose
last stdout line is the JSON result, there.
"""

from __future__ import annotations

import json
from typing import Any

from airflow.providers.cncf.kubernetes.operators.pod import KubernetesPodOperator
from airflow.providers.cncf.kubernetes.utils.xcom_sidecar import PodDefaults
from airflow.sdk.exceptions import AirflowException, AirflowFailException, AirflowSkipException

from twin_ops.local_operator import NO_RETRY_EXIT_CODES, StderrLines, TwinStepRejected, failure_reason
from twin_ops.pod_spec import pod_kwargs, xcom_sidecar_resources


def _last_json_object(text: str) -> dict[str, Any] | None:
    """The last line of ``text`` that is a JSON object (the step's result line in a log tail)."""
    for line in reversed(text.splitlines()):
        line = line.strip()
        if line.startswith("{"):
            try:
                value = json.loads(line)
            except json.JSONDecodeError:
                continue
            if isinstance(value, dict):
                return value
    return None


class TwinPodOperator(KubernetesPodOperator):
    """``twin <arguments>`` in a pod of the execution profile ``profile``; ``deployer=True``: as the deployer
    service account, with its API token (`twin deploy` steps, see ``pod_spec.pod_kwargs``)."""

    def __init__(self, *, profile: str = "cpu", deployer: bool = False, **kwargs: Any) -> None:
        defaults = {
            # On a non-zero exit the tail of the log (with the JSON result line) becomes the container's
            # termination message, read below when the step is rejected.
            "termination_message_policy": "FallbackToLogsOnError",
            # The failed pod is kept for debugging; its full repr in the task's failure is only noise.
            "log_pod_spec_on_failure": False,
        }
        super().__init__(**{**pod_kwargs(kwargs["task_id"], profile, deployer=deployer), **defaults, **kwargs})
        self.profile = profile
        self.deployer = deployer

    def build_pod_request_obj(self, context: Any = None, *, dry_run: bool = False) -> Any:
        """The provider's pod, with the XCom sidecar's requests and limits (``XCOM_SIDECAR_RESOURCES``).

        Provider 10.25 takes the sidecar's resources from the Kubernetes connection's extra
        ``xcom_sidecar_container_resources`` only (no operator argument, unlike its security context):
        when that extra is set it is kept, otherwise the sidecar gets ours instead of requests only."""
        pod = super().build_pod_request_obj(context, dry_run=dry_run)
        if self.do_xcom_push and not self.hook.get_xcom_sidecar_container_resources():
            for container in pod.spec.containers:
                if container.name == PodDefaults.SIDECAR_CONTAINER_NAME:
                    container.resources = xcom_sidecar_resources()
        return pod

    def _base_container_termination(self, remote_pod: Any) -> tuple[int | None, str | None]:
        """The base container's exit code and termination message, when it has terminated."""
        status = getattr(remote_pod, "status", None)
        statuses = getattr(status, "container_statuses", None) or []
        base = next((s for s in statuses if s.name == self.base_container_name), None)
        terminated = base.state.terminated if base is not None and base.state is not None else None
        if terminated is None:
            return None, None
        return terminated.exit_code, terminated.message

    def cleanup(
        self,
        pod: Any,
        remote_pod: Any,
        xcom_result: dict | None = None,
        context: Any = None,
    ) -> None:
        """The provider's cleanup (XCom push, events, pod deletion, its failure); a rejected step
        (exit 2 or 3) turns that failure into ``TwinStepRejected``: failed at once, no retry."""
        try:
            super().cleanup(pod=pod, remote_pod=remote_pod, xcom_result=xcom_result, context=context)
        except (AirflowSkipException, AirflowFailException):
            raise
        except AirflowException as exc:
            exit_code, message = self._base_container_termination(remote_pod)
            if exit_code not in NO_RETRY_EXIT_CODES:
                raise  # 1 unexpected, 4 backend unavailable, a pod that never ran: the task's retries
            raise TwinStepRejected(self._rejection_message(pod, exit_code, message, xcom_result)) from exc

    def _rejection_message(self, pod: Any, exit_code: int, message: str | None, xcom_result: Any) -> str:
        # The step's result: its XCom (return.json, written on failure too), else the log tail's JSON line.
        result = xcom_result if isinstance(xcom_result, dict) else _last_json_object(message or "")
        lines = StderrLines()  # the tail's WARNING/ERROR lines, when there is no JSON error
        list(lines.feed(message or ""))
        list(lines.close())
        reason = failure_reason(result, list(lines.problems), exit_code)
        name = getattr(getattr(pod, "metadata", None), "name", None)
        command = f"`twin {' '.join(map(str, self.arguments or []))}`"
        kind = NO_RETRY_EXIT_CODES[exit_code]
        text = f"{command} failed in pod {name} ({kind}, exit code {exit_code}, not retried): {reason}"
        self.log.error("%s", text)
        return text
