"""Kubernetes mode reads the pod's exit code like local mode reads the subprocess's: a `twin` step that
exits 2 (config) or 3 (bad input) fails at once with its JSON error (no retry, no new GPU pod); 1 and 4
keep KubernetesPodOperator's failure and the task's retries. The error comes from the step's XCom or
from the base container's termination message (``FallbackToLogsOnError``: the log tail)."""

from __future__ import annotations

import json
from typing import Any
from unittest import mock

import pytest
from airflow.sdk import DAG
from airflow.sdk.exceptions import AirflowException, AirflowFailException
from kubernetes.client import models as k8s

ARGS = ["datasets", "build", "--ref", "nope"]
ERROR = {"step": "datasets.build", "status": "error", "error": "unknown dataset ref 'nope'", "kind": "bad_input"}
LOG_TAIL = (
    "2026-01-01 10:00:00,000 INFO twin_core.datasets: resolving nope\n"
    "2026-01-01 10:00:00,100 ERROR datasets.build: unknown dataset ref 'nope'\n" + json.dumps(ERROR) + "\n"
)


@pytest.fixture
def op(monkeypatch: pytest.MonkeyPatch):
    """A pod step whose Kubernetes client is a mock (the provider's cleanup reads and patches the pod)."""
    monkeypatch.setenv("TWIN_EXECUTION", "kubernetes")
    from twin_ops import twin_step

    with DAG("pod_probe", schedule=None):
        task = twin_step("build", ARGS, profile="gpu")
    task.client = mock.MagicMock()
    task.pod_manager = mock.MagicMock()
    return task


def _pod(exit_code: int, message: str | None = None, container: str = "base") -> k8s.V1Pod:
    """The remote pod after its base container terminated with ``exit_code``."""
    phase = "Succeeded" if exit_code == 0 else "Failed"
    terminated = k8s.V1ContainerStateTerminated(exit_code=exit_code, message=message, reason="Error")
    statuses = [
        k8s.V1ContainerStatus(
            name=container,
            image="twin-train:1",
            image_id="",
            ready=False,
            restart_count=0,
            state=k8s.V1ContainerState(terminated=terminated),
        )
    ]
    return k8s.V1Pod(
        metadata=k8s.V1ObjectMeta(name="twin-build-abc123", namespace="llm-twin"),
        spec=k8s.V1PodSpec(containers=[k8s.V1Container(name=container)]),
        status=k8s.V1PodStatus(phase=phase, container_statuses=statuses),
    )


def _cleanup(op: Any, remote_pod: k8s.V1Pod, xcom_result: dict | None = None) -> None:
    op.pod_manager.read_pod.return_value = remote_pod
    op.cleanup(pod=remote_pod, remote_pod=remote_pod, xcom_result=xcom_result, context=None)


def test_bad_input_fails_without_retry_naming_the_twin_error(op) -> None:
    with pytest.raises(AirflowFailException) as caught:
        _cleanup(op, _pod(3, LOG_TAIL))
    assert str(caught.value) == (
        "`twin datasets build --ref nope` failed in pod twin-build-abc123 "
        "(bad input, exit code 3, not retried): unknown dataset ref 'nope'"
    )
    assert "returned a failure" in str(caught.value.__cause__)  # the provider's failure, chained
    op.pod_manager.delete_pod.assert_not_called()  # the failed pod is still kept


def test_config_error_takes_the_error_from_the_xcom_result(op) -> None:
    usage = {"step": "train", "status": "error", "error": "unknown training profile 'huge'", "kind": "config"}
    with pytest.raises(
        AirflowFailException,
        match=r"\(configuration error, exit code 2, not retried\): unknown "
        r"training profile 'huge'$",
    ):
        _cleanup(op, _pod(2, "truncated tail without a JSON line"), xcom_result=usage)


def test_rejection_without_json_falls_back_to_the_tail_errors(op) -> None:
    tail = "2026-01-01 10:00:00,000 ERROR twin_core.train: profile 'huge' not in configs/training.yaml\n"
    with pytest.raises(AirflowFailException, match=r"exit code 3, not retried\): .*ERROR twin_core.train: profile"):
        _cleanup(op, _pod(3, tail))
    with pytest.raises(AirflowFailException, match=r"exit code 3 and no error message$"):
        _cleanup(op, _pod(3, None))


@pytest.mark.parametrize("exit_code", [1, 4])
def test_unexpected_and_unavailable_keep_the_retries(op, exit_code: int) -> None:
    tail = json.dumps({"error": "qdrant unreachable", "kind": "unavailable"})
    with pytest.raises(AirflowException) as caught:
        _cleanup(op, _pod(exit_code, tail))
    assert not isinstance(caught.value, AirflowFailException)
    assert "returned a failure" in str(caught.value)
    assert "qdrant unreachable" in str(caught.value)  # the termination message (log tail)
    assert "remote_pod:" not in str(caught.value)  # no pod dump in the failure


def test_exit_code_of_another_container_is_not_read(op) -> None:
    with pytest.raises(AirflowException) as caught:
        _cleanup(op, _pod(3, LOG_TAIL, container="sidecar"))
    assert not isinstance(caught.value, AirflowFailException)


def test_success_does_not_raise(op) -> None:
    _cleanup(op, _pod(0), xcom_result={"status": "ok"})


def test_pod_spec_puts_the_log_tail_in_the_termination_message(op, render_pod) -> None:
    container = render_pod(op, [])["spec"]["containers"][0]
    assert container["name"] == op.base_container_name == "base"
    assert container["terminationMessagePolicy"] == "FallbackToLogsOnError"
    assert op.log_pod_spec_on_failure is False
