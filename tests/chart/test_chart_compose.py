"""docker-compose.yaml: parses, every documented service exists with a healthcheck, images are real.

No Docker engine here: the file is checked structurally (and with `docker compose config` when a
docker CLI is on PATH).
"""

from __future__ import annotations

import configparser
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
COMPOSE = REPO / "docker-compose.yaml"
CORE_SERVICES = {
    "mongodb",
    "qdrant",
    "airflow-api-server",
    "airflow-scheduler",
    "airflow-dag-processor",
    "airflow-triggerer",
    "twin-serving",
}
# Public official images the stack may pull; everything else is built from images/.
PUBLIC_IMAGES = {"postgres", "mongo", "qdrant/qdrant", "chrislusf/seaweedfs"}


@pytest.fixture(scope="module")
def compose():
    return yaml.safe_load(COMPOSE.read_text())  # SafeLoader resolves the `<<` merge keys


def _one_shot(svc: dict) -> bool:
    return svc.get("restart") == "no"


def documented_services() -> set[str]:
    """Compose services named in README.md, docs/usage.md and docs/deploy.md.

    A name counts when it is the first backticked cell of a table row in a section whose heading
    mentions compose, or the service argument of a `docker compose <verb> <service>` command.
    """
    names: set[str] = set()
    for doc in (REPO / "README.md", REPO / "docs" / "usage.md", REPO / "docs" / "deploy.md"):
        if not doc.exists():
            continue
        in_compose_section = False
        for line in doc.read_text().splitlines():
            if line.startswith("#"):
                in_compose_section = "compose" in line.lower()
                continue
            if in_compose_section and (m := re.match(r"^\|\s*`([a-z0-9-]+)`\s*\|", line)):
                names.add(m.group(1))
            for m in re.finditer(
                r"docker compose (?:logs|restart|exec|stop|start)(?: -[a-z-]+)* ([a-z][a-z0-9-]+)", line
            ):
                names.add(m.group(1))
    return names


def test_compose_parses_with_core_services(compose):
    services = compose["services"]
    assert set(services) >= CORE_SERVICES
    assert services["airflow-scheduler"]["environment"]["AIRFLOW__CORE__EXECUTOR"] == "LocalExecutor"
    assert services["airflow-scheduler"]["environment"]["TWIN_EXECUTION"] == "local"


def test_documented_services_exist_with_healthchecks(compose):
    documented = documented_services()
    assert documented >= CORE_SERVICES, f"docs/deploy.md does not list {CORE_SERVICES - documented}"
    services = compose["services"]
    for name in documented:
        assert name in services, f"documented service {name} is not in docker-compose.yaml"


def test_every_long_running_service_has_a_healthcheck(compose):
    for name, svc in compose["services"].items():
        if _one_shot(svc):
            continue
        check = svc.get("healthcheck", {})
        assert check.get("test") and not check.get("disable"), f"{name} has no healthcheck"
        assert svc.get("restart") == "unless-stopped", name


def test_one_shot_services_are_awaited(compose):
    services = compose["services"]
    one_shots = {n for n, s in services.items() if _one_shot(s)}
    assert one_shots == {"airflow-init", "create-bucket"}
    awaited = {
        dep
        for s in services.values()
        for dep, cond in (s.get("depends_on") or {}).items()
        if isinstance(cond, dict) and cond.get("condition") == "service_completed_successfully"
    }
    assert one_shots <= awaited
    # and every dependency waits for health, not just for a start
    for name, svc in services.items():
        for dep, cond in (svc.get("depends_on") or {}).items():
            assert dep in services, f"{name} depends on unknown {dep}"
            expected = "service_completed_successfully" if dep in one_shots else "service_healthy"
            assert cond["condition"] == expected, f"{name} -> {dep}"


def test_images_are_built_here_or_public_and_pinned(compose):
    dockerfiles = {p.relative_to(REPO).as_posix() for p in (REPO / "images").glob("*/Dockerfile")}
    for name, svc in compose["services"].items():
        image = svc["image"]
        repo, _, tag = image.rpartition(":")
        assert tag and tag != "latest" and repo, f"{name}: {image} is not pinned"
        if "build" in svc:
            assert svc["build"]["dockerfile"] in dockerfiles, name
            assert svc["build"]["context"] == "."
            assert repo.startswith("ghcr.io/llm-twin/")
        else:
            assert repo in PUBLIC_IMAGES or repo.startswith("ghcr.io/llm-twin/"), f"{name}: {image}"
            if repo.startswith("ghcr.io/llm-twin/"):  # then another service builds it
                assert any(s.get("image") == image and "build" in s for s in compose["services"].values())


def test_target_stage_exists(compose):
    dockerfile = (REPO / "images" / "airflow" / "Dockerfile").read_text()
    target = compose["services"]["airflow-scheduler"]["build"]["target"]
    assert re.search(rf"^FROM \S+ AS {re.escape(target)}$", dockerfile, re.M)


def test_ports_bind_loopback_only(compose):
    for name, svc in compose["services"].items():
        for port in svc.get("ports", []):
            assert str(port).startswith("127.0.0.1:"), f"{name} publishes {port} on every interface"


def test_volumes_are_named_or_repo_files(compose):
    declared = set(compose["volumes"])
    for name, svc in compose["services"].items():
        for vol in svc.get("volumes", []):
            source = vol.split(":")[0]
            if source.startswith("./"):
                assert (REPO / source).exists(), f"{name} mounts missing {source}"
            else:
                assert source in declared, f"{name} uses undeclared volume {source}"


def test_env_matches_settings_and_airflow_cfg(compose):
    from twin_core.settings import flat_names

    fields = flat_names()  # every TWIN_* variable of the grouped settings, by its flat name
    cfg = configparser.ConfigParser(interpolation=None)
    cfg.read(REPO / "airflow.cfg")
    for name, svc in compose["services"].items():
        env = svc.get("environment") or {}
        for key in env:
            if key.startswith("TWIN_") and key not in ("TWIN_BIN", "TWIN_EXECUTION_CONFIG"):
                assert key.removeprefix("TWIN_").lower() in fields, f"{name}: {key} is not a setting"
    scheduler = compose["services"]["airflow-scheduler"]
    mounts = {v.split(":")[1]: v.split(":")[0] for v in scheduler["volumes"]}
    assert mounts[cfg["core"]["dags_folder"]] == "./dags"
    assert mounts[cfg["core"]["plugins_folder"]] == "./plugins"
    assert mounts["/opt/airflow/airflow.cfg"] == "./airflow.cfg"
    assert scheduler["environment"]["AIRFLOW__CORE__EXECUTOR"] == cfg["core"]["executor"]


def test_serving_uses_the_contract_command_and_health(compose):
    svc = compose["services"]["twin-serving"]
    assert svc["command"][-4:] == ["--host", "0.0.0.0", "--port", "8080"]
    assert "/v2/health/ready" in " ".join(svc["healthcheck"]["test"])
    assert svc["read_only"] is True and svc["cap_drop"] == ["ALL"]


def _has_compose() -> bool:
    if shutil.which("docker") is None:
        return False
    return subprocess.run(["docker", "compose", "version"], capture_output=True).returncode == 0


@pytest.mark.skipif(not _has_compose(), reason="no `docker compose` (CLI plugin) on this machine")
def test_docker_compose_config_accepts_the_file():
    subprocess.run(["docker", "compose", "-f", str(COMPOSE), "config", "--quiet"], check=True, cwd=REPO)
