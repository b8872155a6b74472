"""Kubernetes mode: the pod of a `twin` step, from its execution profile (configs/execution.yaml).

``pod_kwargs`` gives ``TwinPodOperator`` (``pod_operator.py``) its KubernetesPodOperator arguments: the
profile's image, resources, GPU node pool, volumes and environment, settings and secrets through
``envFrom``, and a Pod Security ``restricted`` context for every container, the XCom sidecar's too.
"""

from __future__ import annotations

from typing import Any

from twin_ops.config import execution_config, image_for, profile

LABELS = {"app.kubernetes.io/part-of": "llm-twin", "app.kubernetes.io/component": "task"}
# The label of the pods of ``deployer=True`` steps: the chart's NetworkPolicy llm-twin-deployer opens the
# Kubernetes API server to these pods only.
DEPLOYER_LABEL = {"llm-twin/deployer": "true"}
# The XCom sidecar KubernetesPodOperator adds to every pod (do_xcom_push): a shell sleeping in a loop
# (alpine), then an exec'd `cat` of return.json and a `kill`. The provider gives it requests only
# (1m/10Mi): a namespace with a ResourceQuota on limits refuses a pod with a container without limits.
# Set in ``TwinPodOperator.build_pod_request_obj``, unless the Kubernetes connection sets its extra
# ``xcom_sidecar_container_resources`` (provider 10.25 has no operator argument for them).
XCOM_SIDECAR_RESOURCES = {"requests": {"cpu": "10m", "memory": "16Mi"}, "limits": {"cpu": "50m", "memory": "32Mi"}}


def container_security_context() -> Any:
    """Every container of a task pod, the XCom sidecar too (Pod Security ``restricted``, with the pod's
    runAsNonRoot, runAsUser 10001 and RuntimeDefault seccomp): no privilege escalation, no
    capabilities, a read-only root filesystem."""
    from kubernetes.client import models as k8s

    return k8s.V1SecurityContext(
        allow_privilege_escalation=False,
        read_only_root_filesystem=True,
        capabilities=k8s.V1Capabilities(drop=["ALL"]),
    )


def xcom_sidecar_resources() -> Any:
    from kubernetes.client import models as k8s

    return k8s.V1ResourceRequirements(**{k: dict(v) for k, v in XCOM_SIDECAR_RESOURCES.items()})


def _volumes(prof: dict[str, Any]) -> dict[str, Any]:
    """/tmp always; for training profiles a memory-backed /dev/shm (``shm_size``: PyTorch dataloaders and
    NCCL outgrow the runtime's 64 MiB) and a per-pod ephemeral volume (``scratch``: checkpoints and model
    downloads, created and deleted with the pod)."""
    from kubernetes.client import models as k8s

    volumes = [k8s.V1Volume(name="tmp", empty_dir=k8s.V1EmptyDirVolumeSource())]
    mounts = [k8s.V1VolumeMount(name="tmp", mount_path="/tmp")]
    if prof.get("shm_size"):
        shm = k8s.V1EmptyDirVolumeSource(medium="Memory", size_limit=str(prof["shm_size"]))
        volumes.append(k8s.V1Volume(name="dshm", empty_dir=shm))
        mounts.append(k8s.V1VolumeMount(name="dshm", mount_path="/dev/shm"))
    scratch = prof.get("scratch")
    if scratch:
        claim = k8s.V1PersistentVolumeClaimSpec(
            access_modes=["ReadWriteOnce"],
            storage_class_name=scratch.get("storage_class"),
            resources=k8s.V1VolumeResourceRequirements(requests={"storage": str(scratch["size"])}),
        )
        template = k8s.V1PersistentVolumeClaimTemplate(
            metadata=k8s.V1ObjectMeta(labels={"app.kubernetes.io/part-of": "llm-twin"}), spec=claim
        )
        volumes.append(
            k8s.V1Volume(name="scratch", ephemeral=k8s.V1EphemeralVolumeSource(volume_claim_template=template))
        )
        mounts.append(k8s.V1VolumeMount(name="scratch", mount_path=scratch.get("mount_path", "/scratch")))
    return {"volumes": volumes, "volume_mounts": mounts}


def _env(prof: dict[str, Any]) -> list[Any]:
    """The step's environment. Read-only root filesystem: scratch space (embedded caches, temp clones)
    lives on an emptyDir. Torch sizes its thread pool from the node's cores, not the pod's CPU limit: on
    a 64-core node a 2-CPU pod ran 64 threads, throttled, and batch jobs would start an engine per thread
    (llm/batch_jobs.py). ``OMP_NUM_THREADS`` comes from the container's CPU limit (Downward API, rounded
    up), unless the profile sets it."""
    from kubernetes.client import models as k8s

    env = {
        "TWIN_EXECUTION": "kubernetes",
        "TWIN_PROGRESS": "0",
        "TMPDIR": "/tmp",
        "XDG_CACHE_HOME": "/tmp/.cache",
        **{k: str(v) for k, v in prof.get("env", {}).items()},
    }
    out = [k8s.V1EnvVar(name=k, value=v) for k, v in env.items()]
    if "OMP_NUM_THREADS" not in env:
        limit = k8s.V1ResourceFieldSelector(resource="limits.cpu", divisor="1")
        out.append(k8s.V1EnvVar(name="OMP_NUM_THREADS", value_from=k8s.V1EnvVarSource(resource_field_ref=limit)))
    return out


def pod_kwargs(task_id: str, profile_name: str, *, deployer: bool = False) -> dict[str, Any]:
    """The KubernetesPodOperator arguments of a step in the execution profile ``profile_name``.

    Task pods run as ``service_account`` with no API token. ``deployer=True`` (the `twin deploy` steps,
    which patch the twin's InferenceServices through the Kubernetes API): ``deployer_service_account``,
    its token mounted, and ``DEPLOYER_LABEL`` (the chart's RoleBinding and NetworkPolicy for them)."""
    from kubernetes.client import models as k8s

    cfg = execution_config()
    prof = profile(profile_name)
    tolerations = [k8s.V1Toleration(**t) for t in prof.get("tolerations", [])]
    return {
        "name": f"twin-{task_id}".replace("_", "-")[:50],
        "namespace": cfg["namespace"],
        "image": image_for(profile_name),
        "image_pull_policy": cfg.get("image_pull_policy", "IfNotPresent"),
        "cmds": ["twin"],
        "service_account_name": cfg["deployer_service_account" if deployer else "service_account"],
        "automount_service_account_token": deployer,
        "container_resources": k8s.V1ResourceRequirements(
            requests={k: str(v) for k, v in prof.get("requests", {}).items()},
            limits={k: str(v) for k, v in prof.get("limits", {}).items()},
        ),
        "node_selector": dict(prof.get("node_selector", {})) or None,
        "tolerations": tolerations or None,
        "env_from": [
            k8s.V1EnvFromSource(config_map_ref=k8s.V1ConfigMapEnvSource(name=cfg["config_map"])),
            k8s.V1EnvFromSource(secret_ref=k8s.V1SecretEnvSource(name=cfg["secret"], optional=True)),
        ],
        "env_vars": _env(prof),
        **_volumes(prof),
        "labels": {**LABELS, "llm-twin/profile": profile_name, **(DEPLOYER_LABEL if deployer else {})},
        "security_context": k8s.V1PodSecurityContext(
            # uid/gid 10001 is the `twin` user of every image under images/; the XCom sidecar (alpine,
            # whose default user is root) runs as it too
            run_as_non_root=True,
            run_as_user=10001,
            run_as_group=10001,
            fs_group=10001,
            seccomp_profile=k8s.V1SeccompProfile(type="RuntimeDefault"),
        ),
        "container_security_context": container_security_context(),
        "xcom_sidecar_container_security_context": container_security_context(),
        "do_xcom_push": True,
        "get_logs": True,
        "on_finish_action": cfg.get("on_finish_action", "delete_succeeded_pod"),
    }
