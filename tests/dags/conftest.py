"""DAG tests run in the Airflow environment (.venv-airflow), which has no twin_core.

Airflow is pointed at a throw-away AIRFLOW_HOME before it is imported, with the repo's dags/ and
plugins/ folders, as the scheduler and the DAG processor would see them.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
DAGS_DIR = REPO_ROOT / "dags"
PLUGINS_DIR = REPO_ROOT / "plugins"

_home = Path(tempfile.mkdtemp(prefix="airflow-home-"))
os.environ["AIRFLOW_HOME"] = str(_home)
os.environ["AIRFLOW__CORE__DAGS_FOLDER"] = str(DAGS_DIR)
os.environ["AIRFLOW__CORE__PLUGINS_FOLDER"] = str(PLUGINS_DIR)
os.environ["AIRFLOW__CORE__LOAD_EXAMPLES"] = "False"
os.environ["AIRFLOW__CORE__UNIT_TEST_MODE"] = "True"
os.environ.setdefault("TWIN_EXECUTION", "local")
if str(PLUGINS_DIR) not in sys.path:
    sys.path.insert(0, str(PLUGINS_DIR))


@pytest.fixture
def local_dagbag(monkeypatch: pytest.MonkeyPatch):
    """The repo's DagBag parsed in local mode, with no import errors."""
    from airflow.dag_processing.dagbag import DagBag

    monkeypatch.setenv("TWIN_EXECUTION", "local")
    bag = DagBag(str(DAGS_DIR))
    assert bag.import_errors == {}
    return bag


@pytest.fixture
def dag(local_dagbag, request: pytest.FixtureRequest):
    """The DAG named by the test module's ``DAG_ID``, parsed in local mode."""
    return local_dagbag.dags[request.module.DAG_ID]


# --- Shared scaffolding of the local end-to-end DAG tests (dag.test with TWIN_EXECUTION=local) ---------

TWIN = REPO_ROOT / ".venv" / "bin" / "twin"
TWIN_PY = REPO_ROOT / ".venv" / "bin" / "python"
AUTHOR = "Ada Quillfeather"


@pytest.fixture
def twin_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """``use(**settings)``: a fresh TWIN_HOME (tmp_path/twin) plus settings, set for the in-process tasks;
    returns the full environment for `twin` subprocesses."""

    def use(**settings: str) -> dict[str, str]:
        values = {"TWIN_HOME": str(tmp_path / "twin"), "HF_HUB_OFFLINE": "1", "TWIN_PROGRESS": "0", **settings}
        for key, value in values.items():
            monkeypatch.setenv(key, value)
        return {**os.environ, **values}

    return use


@pytest.fixture
def run_dag(monkeypatch: pytest.MonkeyPatch):
    """``run(dag, **dag_test_kwargs)`` -> (DagRun, {(task_id, map_index): state}) on the test's metadata DB.

    Without the DAG's deadline: Airflow 3.3's dag.test() passes DeadlineAlert objects where the DagRun
    expects stored alert ids (#73428); deadlines are a scheduler feature, tested in test_twin_monitoring_dag.
    """
    from airflow.utils import db

    def run(dag, **kwargs):  # noqa: ANN001, ANN202
        db.initdb()
        monkeypatch.setattr(dag, "deadline", None)
        dag_run = dag.test(**kwargs)
        return dag_run, {(ti.task_id, ti.map_index): ti.state for ti in dag_run.get_task_instances()}

    return run


@pytest.fixture
def twin():
    """``twin(env, *args)``: run `.venv/bin/twin`, assert it succeeded, return its JSON result line."""

    def call(env: dict[str, str], *args: str, timeout: float = 300) -> dict:
        out = subprocess.run([str(TWIN), *args], env=env, capture_output=True, text=True, timeout=timeout)
        assert out.returncode == 0, out.stderr[-2000:]
        return json.loads(out.stdout.strip().splitlines()[-1])

    return call


@pytest.fixture
def write_backup(tmp_path: Path):
    """``write(contents)``: a warehouse backup folder (`twin warehouse import`) with one LinkedIn post
    of Ada Quillfeather per text."""

    def write(contents: list[str]) -> Path:
        backup = tmp_path / "backup"
        backup.mkdir()
        author = {"_id": "u1", "first_name": "Ada", "last_name": "Quillfeather"}
        posts = [
            {
                "content": {"Content": text},
                "platform": "linkedin",
                "author_id": "u1",
                "author_full_name": AUTHOR,
                "link": f"https://www.linkedin.com/feed/update/urn:li:activity:{i}/",
            }
            for i, text in enumerate(contents)
        ]
        (backup / "UserDocument.json").write_text(json.dumps([author]))
        (backup / "PostDocument.json").write_text(json.dumps(posts))
        return backup

    return write


@pytest.fixture
def git_repo(tmp_path: Path) -> Path:
    """The sample repository (tiny-pipeline) as a one-commit git repository, for the git crawler."""
    from support import SAMPLE_DIR

    env = {
        **os.environ,
        "GIT_AUTHOR_NAME": "T",
        "GIT_AUTHOR_EMAIL": "t@example.com",
        "GIT_COMMITTER_NAME": "T",
        "GIT_COMMITTER_EMAIL": "t@example.com",
        "GIT_CONFIG_GLOBAL": os.devnull,
    }
    dest = tmp_path / "tiny-pipeline"
    shutil.copytree(SAMPLE_DIR / "repos" / "tiny-pipeline", dest)
    for cmd in (["git", "init", "-q"], ["git", "add", "-A"], ["git", "commit", "-q", "-m", "t"]):
        subprocess.run(cmd, cwd=dest, env=env, check=True, capture_output=True)
    return dest


K8S_VERSION = "1.33.0"

# Pod Security Standards, profile "restricted" (baseline included), as the PodSecurity admission
# controller of Kubernetes 1.33 enforces it (pod-security.kubernetes.io/enforce: restricted).
PSS_VOLUME_TYPES = {
    "configMap",
    "csi",
    "downwardAPI",
    "emptyDir",
    "ephemeral",
    "persistentVolumeClaim",
    "projected",
    "secret",
}
PSS_SAFE_SYSCTLS = {
    "kernel.shm_rmid_forced",
    "net.ipv4.ip_local_port_range",
    "net.ipv4.ip_unprivileged_port_start",
    "net.ipv4.tcp_syncookies",
    "net.ipv4.ping_group_range",
    "net.ipv4.ip_local_reserved_ports",
    "net.ipv4.tcp_keepalive_time",
    "net.ipv4.tcp_fin_timeout",
    "net.ipv4.tcp_keepalive_intvl",
    "net.ipv4.tcp_keepalive_probes",
}
PSS_SELINUX_TYPES = {None, "", "container_t", "container_init_t", "container_kvm_t", "container_engine_t"}


def pod_security_violations(manifest: dict) -> list[str]:
    """What the Pod Security ``restricted`` profile refuses in a pod manifest (empty: admitted), and
    what this project adds for every container: a read-only root filesystem, CPU and memory requests
    and limits (a namespace with a ResourceQuota on limits refuses a container without them)."""
    spec = manifest["spec"]
    psc = spec.get("securityContext") or {}
    out = [f"spec.{key}" for key in ("hostNetwork", "hostPID", "hostIPC") if spec.get(key)]
    out += [
        f"volume {v['name']}: type not allowed"
        for v in spec.get("volumes") or []
        if set(v) - {"name"} - PSS_VOLUME_TYPES
    ]
    out += [f"sysctl {s['name']}" for s in psc.get("sysctls") or [] if s["name"] not in PSS_SAFE_SYSCTLS]
    if psc.get("runAsUser") == 0:
        out.append("pod runAsUser 0")
    if (psc.get("seccompProfile") or {}).get("type") not in (None, "RuntimeDefault", "Localhost"):
        out.append("pod seccompProfile")
    if (psc.get("seLinuxOptions") or {}).get("type") not in PSS_SELINUX_TYPES:
        out.append("pod seLinuxOptions.type")
    if (psc.get("appArmorProfile") or {}).get("type") not in (None, "RuntimeDefault", "Localhost"):
        out.append("pod appArmorProfile")
    containers = [
        (kind, c) for kind in ("initContainers", "containers", "ephemeralContainers") for c in spec.get(kind) or []
    ]
    for kind, c in containers:
        where = f"{kind} {c['name']}"
        sc = c.get("securityContext") or {}
        caps = sc.get("capabilities") or {}
        if sc.get("privileged"):
            out.append(f"{where}: privileged")
        if sc.get("allowPrivilegeEscalation") is not False:
            out.append(f"{where}: allowPrivilegeEscalation is not false")
        if "ALL" not in (caps.get("drop") or []):
            out.append(f"{where}: capabilities.drop lacks ALL")
        if set(caps.get("add") or []) - {"NET_BIND_SERVICE"}:
            out.append(f"{where}: capabilities.add")
        if not (
            sc.get("runAsNonRoot") is True or (psc.get("runAsNonRoot") is True and sc.get("runAsNonRoot") is not False)
        ):
            out.append(f"{where}: runAsNonRoot is not true")
        if sc.get("runAsUser") == 0:
            out.append(f"{where}: runAsUser 0")
        seccomp = (sc.get("seccompProfile") or psc.get("seccompProfile") or {}).get("type")
        if seccomp not in ("RuntimeDefault", "Localhost"):
            out.append(f"{where}: seccompProfile is {seccomp}")
        if (sc.get("seLinuxOptions") or {}).get("type") not in PSS_SELINUX_TYPES:
            out.append(f"{where}: seLinuxOptions.type")
        if (sc.get("appArmorProfile") or {}).get("type") not in (None, "RuntimeDefault", "Localhost"):
            out.append(f"{where}: appArmorProfile")
        if sc.get("procMount") not in (None, "Default"):
            out.append(f"{where}: procMount")
        if (sc.get("windowsOptions") or {}).get("hostProcess"):
            out.append(f"{where}: hostProcess")
        if any(port.get("hostPort") for port in c.get("ports") or []):
            out.append(f"{where}: hostPort")
        # this project's policy on top of the profile
        if sc.get("readOnlyRootFilesystem") is not True:
            out.append(f"{where}: readOnlyRootFilesystem is not true")
        resources = c.get("resources") or {}
        for bound in ("requests", "limits"):
            missing = {"cpu", "memory"} - set(resources.get(bound) or {})
            if missing:
                out.append(f"{where}: no {bound} for {', '.join(sorted(missing))}")
    return out


@pytest.fixture
def pod_security():
    """``pod_security_violations``: what Pod Security ``restricted`` (and this project) refuse in a pod."""
    return pod_security_violations


@pytest.fixture
def render_pod():
    """``render(task, arguments, **mapped)``: the pod a (mapped) pod task starts for these arguments and
    mapped kwargs, checked against the Kubernetes API schema and the Pod Security ``restricted`` profile
    (``pod_security_violations``, every container: the XCom sidecar the provider adds too); returns the
    manifest as a dict."""
    import kubernetes_validate
    from kubernetes.client import ApiClient

    def render(task, arguments: list[str] | None = None, **mapped) -> dict:  # noqa: ANN001
        cls = getattr(task, "operator_class", type(task))
        if cls is type(task):  # a plain (unmapped) operator
            pod = task.build_pod_request_obj(dry_run=True)
        else:
            kwargs = {k: v for k, v in task.partial_kwargs.items() if k != "task_id"}
            op = cls(task_id=task.task_id, **{**kwargs, "arguments": arguments or [], **mapped})
            pod = op.build_pod_request_obj(dry_run=True)
        manifest = ApiClient().sanitize_for_serialization(pod)
        manifest.setdefault("apiVersion", "v1")
        manifest.setdefault("kind", "Pod")
        kubernetes_validate.validate(manifest, K8S_VERSION, strict=True)
        assert pod_security_violations(manifest) == [], manifest["metadata"]["name"]
        return manifest

    return render
