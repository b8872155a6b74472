"""Every DAG, in both execution modes: it loads, it is documented, and in kubernetes mode every task
renders a pod spec that validates against the Kubernetes schema."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
import yaml
from airflow.dag_processing.dagbag import DagBag
from airflow.providers.cncf.kubernetes.operators.pod import KubernetesPodOperator

REPO_ROOT = Path(__file__).resolve().parents[2]
EXEC_CFG = yaml.safe_load((REPO_ROOT / "configs" / "execution.yaml").read_text())
K8S_VERSION = "1.33.0"
# THE set of DAG ids in dags/: a new pipeline adds its id here (the test below wants exactly this set).
EXPECTED_DAGS = {"twin_datasets", "twin_etl", "twin_evaluation", "twin_features", "twin_monitoring", "twin_training"}
# Tasks that must not retry: a human approval (a retry after its response timeout asks the approver again).
NO_RETRY_TASKS = {("twin_evaluation", "approve")}
# The tasks that run `twin deploy` (they patch InferenceServices through the Kubernetes API): the only
# pods with the deployer service account and an API token.
DEPLOYER_TASKS = {"twin_evaluation": ("canary", "watch")}


def _load(monkeypatch: pytest.MonkeyPatch, mode: str) -> DagBag:
    monkeypatch.setenv("TWIN_EXECUTION", mode)
    return DagBag(str(REPO_ROOT / "dags"))


@pytest.fixture(params=["local", "kubernetes"])
def dagbag(request, monkeypatch: pytest.MonkeyPatch) -> DagBag:
    return _load(monkeypatch, request.param)


def test_dagbag_loads_without_errors(dagbag: DagBag) -> None:
    assert dagbag.import_errors == {}
    assert set(dagbag.dags) == EXPECTED_DAGS


def test_graph_is_identical_in_both_modes(monkeypatch: pytest.MonkeyPatch) -> None:
    def shape(bag: DagBag) -> dict:
        return {d: sorted((t.task_id, sorted(t.downstream_task_ids)) for t in dag.tasks) for d, dag in bag.dags.items()}

    assert shape(_load(monkeypatch, "local")) == shape(_load(monkeypatch, "kubernetes"))


def test_every_dag_is_owned_documented_tagged_and_retried(dagbag: DagBag) -> None:
    for dag_id, dag in dagbag.dags.items():
        assert dag.doc_md, dag_id
        assert len(dag.doc_md.strip()) > 80, dag_id
        assert "llm-twin" in dag.tags, dag_id
        assert dag.owner == "llm-twin", dag_id
        for task in dag.tasks:
            if (dag_id, task.task_id) in NO_RETRY_TASKS:
                assert task.retries == 0, f"{dag_id}.{task.task_id}"
            else:
                assert task.retries >= 2, f"{dag_id}.{task.task_id}"
            assert task.on_failure_callback, f"{dag_id}.{task.task_id} has no failure alert"


def test_every_task_has_a_budget_per_try_within_its_runs_deadline(local_dagbag) -> None:
    """A hung step is killed at its execution_timeout, retried, and its last failure pages: without one it held
    the DAG's only active run (max_active_runs=1) for good, e.g. a stuck drift check blocked every later hour.
    One try fits in the run's deadline; a mapped task's budget is its partial's."""
    budgets = {}
    for dag_id, dag in local_dagbag.dags.items():
        for task in dag.tasks:
            timeout = task.partial_kwargs.get("execution_timeout") if hasattr(task, "partial_kwargs") else None
            timeout = timeout or task.execution_timeout
            assert timeout and timeout < dag.deadline[0].interval, f"{dag_id}.{task.task_id}: {timeout}"
            budgets.setdefault(dag_id, set()).add(timeout)
    assert {d: max(b) for d, b in budgets.items() if d != "twin_evaluation"} == {
        "twin_etl": timedelta(minutes=45),
        "twin_features": timedelta(hours=1),
        "twin_datasets": timedelta(hours=1),
        "twin_training": timedelta(hours=8),
        "twin_monitoring": timedelta(minutes=40),
    }


def test_invalid_execution_mode_is_an_import_error(monkeypatch: pytest.MonkeyPatch) -> None:
    bag = _load(monkeypatch, "docker")
    assert bag.import_errors
    assert all("TWIN_EXECUTION" in err for err in bag.import_errors.values())


def _pod_operators(dag) -> list[KubernetesPodOperator]:
    """Every pod task; a mapped task is rendered with one example expansion (its default profile)."""
    ops = []
    for task in dag.tasks:
        cls = getattr(task, "operator_class", type(task))
        if isinstance(task, KubernetesPodOperator):
            ops.append(task)
        elif isinstance(cls, type) and issubclass(cls, KubernetesPodOperator):
            kwargs = {k: v for k, v in task.partial_kwargs.items() if k not in ("task_id",)}
            ops.append(cls(task_id=task.task_id, arguments=["--help"], **kwargs))
    return ops


def test_kubernetes_mode_renders_valid_pod_specs(monkeypatch: pytest.MonkeyPatch, render_pod) -> None:
    bag = _load(monkeypatch, "kubernetes")
    rendered = deployers = 0
    for dag in bag.dags.values():
        non_pod = {t.task_id for t in dag.tasks} - {o.task_id for o in _pod_operators(dag)}
        # Human-in-the-loop steps and no-op branch targets run nothing either.
        non_pod -= {t.task_id for t in dag.tasks if type(t).__name__ in ("ApprovalOperator", "EmptyOperator")}
        # Only small planning/branching @tasks (no business logic) may run outside pods.
        assert all(t.startswith(("plan_", "check_")) for t in non_pod), non_pod
        for op in _pod_operators(dag):
            manifest = render_pod(op, [])
            spec = manifest["spec"]
            container = spec["containers"][0]
            assert container["command"] == ["twin"]
            assert container["image"].startswith(EXEC_CFG["images"]["registry"] + "/")
            assert container["resources"]["requests"] and container["resources"]["limits"]
            # Only the `twin deploy` steps run as the deployer, with its API token; every other pod has none.
            deployer = op.task_id in DEPLOYER_TASKS.get(dag.dag_id, ())
            sa = EXEC_CFG["deployer_service_account" if deployer else "service_account"]
            assert spec["serviceAccountName"] == sa, op.task_id
            assert spec["automountServiceAccountToken"] is deployer, op.task_id
            assert (manifest["metadata"]["labels"].get("llm-twin/deployer") == "true") is deployer, op.task_id
            deployers += deployer
            assert manifest["metadata"]["namespace"] == EXEC_CFG["namespace"]
            env_from = container["envFrom"]
            assert {"configMapRef": {"name": EXEC_CFG["config_map"]}} in env_from
            assert {"secretRef": {"name": EXEC_CFG["secret"], "optional": True}} in env_from
            assert spec["securityContext"]["runAsNonRoot"] is True
            assert container["securityContext"]["capabilities"]["drop"] == ["ALL"]
            assert container["securityContext"]["readOnlyRootFilesystem"] is True
            # render_pod checks every container against Pod Security `restricted`; the XCom sidecar the
            # provider appends is as locked down as the base container, with requests and limits
            (sidecar,) = spec["containers"][1:]
            assert sidecar["name"] == "airflow-xcom-sidecar", op.task_id
            assert sidecar["securityContext"] == container["securityContext"], op.task_id
            assert sidecar["resources"]["requests"] and sidecar["resources"]["limits"], op.task_id
            assert {"name": "tmp", "mountPath": "/tmp"} in container["volumeMounts"]
            assert op.do_xcom_push  # the result comes from /airflow/xcom/return.json
            assert op.on_finish_action.value == "delete_succeeded_pod"  # failed pods are kept
            rendered += 1
    assert rendered >= 2
    assert deployers == sum(map(len, DEPLOYER_TASKS.values()))


@pytest.mark.parametrize("profile", ["cpu", "gpu", "serving"])
def test_profiles_render_their_image_resources_and_gpu_pool(
    monkeypatch: pytest.MonkeyPatch, render_pod, profile: str
) -> None:
    monkeypatch.setenv("TWIN_EXECUTION", "kubernetes")
    from airflow.sdk import DAG
    from twin_ops import twin_step

    with DAG("probe", schedule=None):
        op = twin_step(f"{profile}_step", ["train", "sft"], profile=profile)
    manifest = render_pod(op, [])
    spec, container = manifest["spec"], manifest["spec"]["containers"][0]
    prof = EXEC_CFG["profiles"][profile]
    assert container["image"] == f"{EXEC_CFG['images']['registry']}/{prof['image']}:{EXEC_CFG['images']['tag']}"
    assert container["args"] == ["train", "sft"]
    assert container["resources"]["limits"] == {k: str(v) for k, v in prof["limits"].items()}
    threads = {"resourceFieldRef": {"resource": "limits.cpu", "divisor": "1"}}  # torch's threads: the pod's CPUs
    assert {"name": "OMP_NUM_THREADS", "valueFrom": threads} in container["env"]
    assert {"name": "TWIN_EXECUTION", "value": "kubernetes"} in container["env"]
    if profile == "gpu":
        assert container["resources"]["limits"]["nvidia.com/gpu"] == "1"
        assert spec["nodeSelector"] == prof["node_selector"]
        assert {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"} in spec["tolerations"]
    else:
        assert "nvidia.com/gpu" not in container["resources"]["limits"]
        assert not spec.get("tolerations")


def test_images_and_names_are_configurable_without_code(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TWIN_EXECUTION", "kubernetes")
    monkeypatch.setenv("TWIN_IMAGE_REGISTRY", "registry.example.com/team")
    monkeypatch.setenv("TWIN_IMAGE_TAG", "2.0.0")
    monkeypatch.setenv("TWIN_K8S_NAMESPACE", "twin-prod")
    from airflow.sdk import DAG
    from twin_ops import twin_step

    with DAG("probe2", schedule=None):
        op = twin_step("s", ["warehouse", "stats"])
    pod = op.build_pod_request_obj(dry_run=True)
    assert pod.spec.containers[0].image == "registry.example.com/team/twin-core:2.0.0"
    assert pod.metadata.namespace == "twin-prod"


def test_unknown_profile_is_rejected(monkeypatch: pytest.MonkeyPatch) -> None:
    from airflow.sdk import DAG
    from twin_ops import twin_step

    with DAG("probe3", schedule=None), pytest.raises(ValueError, match="unknown resource profile 'tpu'"):
        twin_step("s", ["x"], profile="tpu")
