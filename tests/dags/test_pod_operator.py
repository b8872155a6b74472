"""Kubernetes mode reads the pod's exit code like local mode reads the subprocess's: a `twin` step that
exits 2 (config) or 3 (bad input) fails at once with its JSON error (no retry, no new GPU pod); 1 and 4
keep KubernetesPodOperator's failure and the task's retries. The error comes from the step's XCom or
from the base container's termination message (``FallbackToLogsOnError``: the log tail)."""

from __future__ import annotations

import json
import re
from typing import Any
from unittest import mock

import pytest
from airflow.providers.cncf.kubernetes.utils.xcom_sidecar import PodDefaults
from airflow.sdk import DAG
from airflow.sdk.exceptions import AirflowException, AirflowFailException
from kubernetes.client import ApiClient
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


# The XCom sidecar the provider adds (do_xcom_push): restricted like the base container, with requests
# AND limits (Pod Security `restricted` and ResourceQuota on limits admit the pod), its image pinned.
RESTRICTED = {"allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]}, "readOnlyRootFilesystem": True}
SIDECAR = {
    "name": "airflow-xcom-sidecar",
    "image": PodDefaults.SIDECAR_CONTAINER.image,  # the provider's pinned alpine (10.25: alpine:3.24.2)
    "command": ["sh", "-c", 'trap "exit 0" INT; while true; do sleep 1; done;'],
    "resources": {"requests": {"cpu": "10m", "memory": "16Mi"}, "limits": {"cpu": "50m", "memory": "32Mi"}},
    "securityContext": RESTRICTED,
    "volumeMounts": [{"name": "xcom", "mountPath": "/airflow/xcom"}],
}


def _sidecar(manifest: dict) -> dict:
    (sidecar,) = [c for c in manifest["spec"]["containers"] if c["name"] == "airflow-xcom-sidecar"]
    return sidecar


def test_xcom_sidecar_is_restricted_bounded_and_pinned(op, render_pod) -> None:
    manifest = render_pod(op, [])  # every container passes Pod Security `restricted` (conftest)
    base, sidecar = manifest["spec"]["containers"]
    assert sidecar == SIDECAR
    assert base["securityContext"] == sidecar["securityContext"] == RESTRICTED
    # alpine's default user is root: the pod's non-root user (the images' `twin`, 10001) covers the sidecar
    psc = manifest["spec"]["securityContext"]
    assert psc["runAsNonRoot"] is True and psc["runAsUser"] == psc["runAsGroup"] == 10001
    assert "runAsUser" not in sidecar["securityContext"]  # no per-container override of the pod's user
    assert re.fullmatch(r"[a-z0-9./-]+:\d+\.\d+\.\d+", sidecar["image"]), sidecar["image"]  # a release tag


def test_connection_extras_size_and_mirror_the_sidecar_but_cannot_weaken_it(
    monkeypatch: pytest.MonkeyPatch, render_pod
) -> None:
    """The provider's connection extras still size the sidecar and name its image (a mirror); its
    security context is the operator's argument, which wins over the connection's."""
    resources = {"requests": {"cpu": "20m", "memory": "24Mi"}, "limits": {"cpu": "100m", "memory": "64Mi"}}
    extra = {
        "in_cluster": False,
        "xcom_sidecar_container_image": "registry.example.com/mirror/alpine:3.24.2",
        "xcom_sidecar_container_resources": json.dumps(resources),
        "xcom_sidecar_container_security_context": json.dumps({"privileged": True}),
    }
    monkeypatch.setenv("AIRFLOW_CONN_KUBERNETES_DEFAULT", json.dumps({"conn_type": "kubernetes", "extra": extra}))
    monkeypatch.setenv("TWIN_EXECUTION", "kubernetes")
    from twin_ops import twin_step

    with DAG("pod_conn_probe", schedule=None):
        task = twin_step("build", ARGS)
    sidecar = _sidecar(render_pod(task, []))
    assert sidecar["image"] == "registry.example.com/mirror/alpine:3.24.2"
    assert sidecar["resources"] == resources
    assert sidecar["securityContext"] == RESTRICTED


def test_the_providers_default_sidecar_is_refused(op, render_pod, pod_security) -> None:
    """Control: the sidecar as the provider builds it (requests only, no securityContext) in our pod is
    refused by the check every rendered pod passes, so a pass means something."""
    manifest = render_pod(op, [])
    default = ApiClient().sanitize_for_serialization(PodDefaults.SIDECAR_CONTAINER)
    manifest["spec"]["containers"][1] = default
    where = "containers airflow-xcom-sidecar"
    assert pod_security(manifest) == [
        f"{where}: allowPrivilegeEscalation is not false",
        f"{where}: capabilities.drop lacks ALL",
        f"{where}: readOnlyRootFilesystem is not true",
        f"{where}: no limits for cpu, memory",
    ]
