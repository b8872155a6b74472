"""Both sides agree: the chart, the images, airflow.cfg and the DAG factory use the same names.

The DAG factory (plugins/twin_ops) reads configs/execution.yaml; its own pod-spec test lives in
tests/dags (Airflow env). Here the twin env checks the chart against the same file, and reads the
factory's and the settings' sources as text (no Airflow import), so a rename on either side fails here.
"""

from __future__ import annotations

import ast
import configparser
import json
import os
import re
import subprocess

import chart_render as cr  # noqa: E402  (tests/chart/conftest.py puts it on sys.path)
import helm_python  # noqa: F401 - a dev dependency: missing is a failure, not a skip
import pytest
import yaml  # noqa: E402

EXECUTION = yaml.safe_load((cr.REPO / "configs" / "execution.yaml").read_text())
BOTH_APIS = (cr.KSERVE_API, *cr.PROMETHEUS_APIS)


@pytest.fixture(scope="module")
def objs():
    # installed as the docs say: release llm-twin in namespace llm-twin (configs/execution.yaml)
    return cr.objects(cr.render(None, api_versions=BOTH_APIS, namespace=EXECUTION["namespace"]))


def _settings_fields() -> set[str]:
    """Every TWIN_* variable of the grouped settings, by its flat name (``llm_model_id``)."""
    from twin_core.settings import flat_names

    return flat_names()


def _module_constant(path, name):
    tree = ast.parse(path.read_text())
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and t.id == name for t in node.targets):
            return ast.literal_eval(node.value)
    raise AssertionError(f"{name} not found in {path}")


def test_execution_config_is_the_same_document(objs):
    (cm,) = cr.find(objs, "ConfigMap", "llm-twin-execution")
    assert yaml.safe_load(cm["data"]["execution.yaml"]) == EXECUTION


def test_task_identity_objects_exist_with_the_factory_names(objs):
    ns = EXECUTION["namespace"]
    (sa,) = cr.find(objs, "ServiceAccount", EXECUTION["service_account"])
    assert sa["metadata"]["namespace"] == ns
    (deployer,) = cr.find(objs, "ServiceAccount", EXECUTION["deployer_service_account"])
    assert deployer["metadata"]["namespace"] == ns
    (binding,) = cr.find(objs, "RoleBinding", "llm-twin-deployer")
    assert binding["subjects"] == [
        {"kind": "ServiceAccount", "name": EXECUTION["deployer_service_account"], "namespace": ns}
    ]
    (settings,) = cr.find(objs, "ConfigMap", EXECUTION["config_map"])
    assert settings["metadata"]["namespace"] == ns
    values = cr.chart_values()
    assert values["secrets"]["existingSecret"] == EXECUTION["secret"]
    assert values["tasks"]["onFinishAction"] == EXECUTION["on_finish_action"]
    assert values["images"]["pullPolicy"] == EXECUTION["image_pull_policy"]


def test_images_match_the_factory(objs):
    values = cr.chart_values()
    assert values["images"]["registry"] == EXECUTION["images"]["registry"]
    assert values["images"]["tag"] == EXECUTION["images"]["tag"]
    by_runtime = {"cpu": "core", "gpu": "trainer", "serving": "serving"}
    for profile, key in by_runtime.items():
        assert values["images"][key] == EXECUTION["profiles"][profile]["image"]
    (isvc,) = cr.find(objs, "InferenceService")
    expected = (
        f"{EXECUTION['images']['registry']}/{EXECUTION['profiles']['serving']['image']}:{EXECUTION['images']['tag']}"
    )
    assert {c["image"] for comp in ("predictor", "transformer") for c in isvc["spec"][comp]["containers"]} == {expected}
    airflow = values["airflow"]["images"]["airflow"]
    assert (
        f"{airflow['repository']}:{airflow['tag']}"
        == f"{EXECUTION['images']['registry']}/airflow:{EXECUTION['images']['tag']}"
    )


def test_every_image_has_a_dockerfile_and_build_sh_tags_them_alike():
    names = {p["image"] for p in EXECUTION["profiles"].values()} | {"airflow"}
    assert names == {p.parent.name for p in (cr.REPO / "images").glob("*/Dockerfile")}
    out = subprocess.run(
        ["bash", str(cr.REPO / "images" / "build.sh")],
        env={**{k: v for k, v in os.environ.items() if not k.startswith("TWIN_IMAGE_")}, "BUILDER": "echo"},
        capture_output=True,
        text=True,
        check=True,
        cwd=cr.REPO,
    ).stdout
    refs = {line.removeprefix(">>> ") for line in out.splitlines() if line.startswith(">>> ")}
    registry, tag = EXECUTION["images"]["registry"], EXECUTION["images"]["tag"]
    assert refs == {f"{registry}/{name}:{tag}" for name in names}


def test_settings_configmap_keys_are_settings_fields(objs):
    fields = _settings_fields()
    (cm,) = cr.find(objs, "ConfigMap", EXECUTION["config_map"])
    twin_keys = {k for k in cm["data"] if k.startswith("TWIN_")}
    unknown = {k for k in twin_keys if k.removeprefix("TWIN_").lower() not in fields}
    assert unknown == set()
    # the stores the platform runs are all wired
    assert {"TWIN_MONGODB_URI", "TWIN_QDRANT_URL", "TWIN_ARTIFACTS_URI", "TWIN_S3_ENDPOINT_URL"} <= twin_keys


def test_serving_reads_the_same_settings_and_secret(objs):
    (isvc,) = cr.find(objs, "InferenceService")
    for component in ("predictor", "transformer"):
        (container,) = isvc["spec"][component]["containers"]
        assert container["envFrom"] == [
            {"configMapRef": {"name": EXECUTION["config_map"]}},
            {"secretRef": {"name": EXECUTION["secret"], "optional": True}},
        ]


def test_factory_pods_are_selected_by_the_task_network_policy(objs):
    pod_spec = cr.REPO / "plugins" / "twin_ops" / "pod_spec.py"
    labels = _module_constant(pod_spec, "LABELS")
    (np,) = cr.find(objs, "NetworkPolicy", "llm-twin-tasks")
    assert np["metadata"]["namespace"] == EXECUTION["namespace"]
    selector = np["spec"]["podSelector"]["matchLabels"]
    assert selector.items() <= labels.items(), f"factory labels {labels} do not match {selector}"


def test_airflow_side_can_launch_task_pods(objs):
    (role,) = cr.find(objs, "Role", "llm-twin-pod-launcher")
    assert role["metadata"]["namespace"] == EXECUTION["namespace"]
    verbs = {(res, verb) for rule in role["rules"] for res in rule["resources"] for verb in rule["verbs"]}
    needed = {("pods", v) for v in ("create", "get", "list", "watch", "delete", "patch")}
    needed |= {("pods/log", "get"), ("pods/exec", "create"), ("events", "list")}  # exec: XCom sidecar
    assert needed <= verbs
    (binding,) = cr.find(objs, "RoleBinding", "llm-twin-pod-launcher")
    af = cr.chart_values()["airflow"]
    assert {s["name"] for s in binding["subjects"]} == {
        af[c]["serviceAccount"]["name"] for c in ("scheduler", "triggerer", "workers")
    }
    # Airflow pods find the rendered execution.yaml where TWIN_EXECUTION_CONFIG points
    env = {e["name"]: e["value"] for e in af["env"]}
    assert env["TWIN_EXECUTION"] == "kubernetes"
    (mount,) = [m for m in af["volumeMounts"] if m["name"] == "twin-execution"]
    assert env["TWIN_EXECUTION_CONFIG"] == f"{mount['mountPath']}/execution.yaml"
    (volume,) = [v for v in af["volumes"] if v["name"] == "twin-execution"]
    assert volume["configMap"]["name"] == cr.chart_values()["tasks"]["executionConfigMapName"]


def test_airflow_image_puts_execution_yaml_where_the_factory_looks():
    dockerfile = (cr.REPO / "images" / "airflow" / "Dockerfile").read_text()
    assert "COPY --chown=airflow:0 configs/execution.yaml /opt/airflow/configs/execution.yaml" in dockerfile
    config_py = cr.REPO / "plugins" / "twin_ops" / "config.py"
    if config_py.exists():
        text = config_py.read_text()
        assert 'find_config("execution.yaml", "TWIN_EXECUTION_CONFIG")' in text
        assert 'Path("/opt/airflow/configs")' in text  # one of the config roots searched


def _image_copies() -> list[str]:
    """The build-context sources of every COPY in every image (all stages; not COPY --from)."""
    sources = []
    for dockerfile in sorted((cr.REPO / "images").glob("*/Dockerfile")):
        for line in dockerfile.read_text().splitlines():
            words = line.split()
            if words[:1] == ["COPY"] and not any(w.startswith("--from") for w in words):
                sources += [w for w in words[1:-1] if not w.startswith("--")]
    return sources


def test_airflow_image_ships_every_config_the_plugins_read():
    """Each configs/ entry twin_ops looks up with find_config (at parse or plan time: execution.yaml, the
    training profiles, the ETL configs of twin_etl's form) is copied where find_config looks in the image."""
    plugins = cr.REPO / "plugins" / "twin_ops"
    read = set()
    for path in plugins.glob("*.py"):
        read |= {m.split("/")[0] for m in re.findall(r'find_config\(f?"([^"{]+)', path.read_text())}
    assert read >= {"execution.yaml", "training", "etl"}
    dockerfile = (cr.REPO / "images" / "airflow" / "Dockerfile").read_text()
    for entry in sorted(read):
        assert f"COPY --chown=airflow:0 configs/{entry} /opt/airflow/configs/{entry}\n" in dockerfile, entry


def test_dockerignore_sends_every_image_copy_source():
    """.dockerignore excludes everything (`*`) and allows what the Dockerfiles copy: a COPY source that it
    does not allow is missing from the build context, and the build fails."""
    lines = [x.strip() for x in (cr.REPO / ".dockerignore").read_text().splitlines()]
    assert "*" in lines
    allowed = [x[1:].rstrip("/") for x in lines if x.startswith("!")]
    missing = [src for src in _image_copies() if not any(src == a or src.startswith(a + "/") for a in allowed)]
    assert missing == []


# --------------------------------------------------------------------------- airflow.cfg


def _airflow_cfg() -> configparser.ConfigParser:
    cfg = configparser.ConfigParser(interpolation=None)
    cfg.read(cr.REPO / "airflow.cfg")
    return cfg


def _norm(value) -> str:
    return str(value).strip().lower()


def test_chart_airflow_config_matches_airflow_cfg(tmp_path):
    """The airflow.cfg the Airflow chart renders from airflow.config (each value through `tpl`: the
    KubernetesExecutor's namespace is the release's) agrees with ./airflow.cfg for a release installed as
    the docs say, in the namespace of configs/execution.yaml."""
    cfg = _airflow_cfg()
    chart = cr.with_stub_dependencies(tmp_path)
    _, rendered = cr.stub_airflow(cr.objects(cr.render(None, chart_dir=chart, namespace=EXECUTION["namespace"])))
    chart_cfg = configparser.ConfigParser(interpolation=None)
    chart_cfg.read_string(rendered)
    assert chart_cfg.sections() == sorted(cr.chart_values()["airflow"]["config"])
    for section in chart_cfg.sections():
        for key, value in chart_cfg[section].items():
            assert _norm(cfg[section][key]) == _norm(value), f"[{section}] {key}"
    assert chart_cfg["kubernetes_executor"]["namespace"] == EXECUTION["namespace"]
    assert cfg["kubernetes_executor"]["namespace"] == EXECUTION["namespace"]
    assert cfg["core"]["executor"] == cr.chart_values()["airflow"]["executor"]
    assert _norm(cfg["operators"]["default_deferrable"]) == "true"
    assert _norm(cfg["core"]["load_examples"]) == "false"


def test_airflow_cfg_keys_exist_in_airflow_3():
    """Every section/key is a real Airflow 3.3 option (read from the Airflow env's config templates)."""
    site = next((cr.REPO / ".venv-airflow" / "lib").glob("python3*/site-packages/airflow"), None)
    if site is None:
        pytest.skip(".venv-airflow is not built (make setup)")
    known = {
        s: set(v.get("options") or {})
        for s, v in yaml.safe_load((site / "config_templates" / "config.yml").read_text()).items()
    }
    provider = (site / "providers" / "cncf" / "kubernetes" / "get_provider_info.py").read_text()
    (ret,) = [n for n in ast.walk(ast.parse(provider)) if isinstance(n, ast.Return)]
    for section, spec in ast.literal_eval(ret.value)["config"].items():
        known.setdefault(section, set()).update(spec["options"])
    cfg = _airflow_cfg()
    unknown = [f"[{s}] {k}" for s in cfg.sections() for k in cfg[s] if k not in known.get(s, set())]
    assert unknown == []
    chart_unknown = [
        f"[{s}] {k}"
        for s, opts in cr.chart_values()["airflow"]["config"].items()
        for k in opts
        if k not in known.get(s, set())
    ]
    assert chart_unknown == []


def test_values_document_every_setting_they_set():
    """values.yaml comments name the TWIN_* variable for each settings key (docs and chart stay aligned)."""
    text = (cr.CHART / "values.yaml").read_text()
    for env in (
        "TWIN_LOG_LEVEL",
        "TWIN_MONGODB_DATABASE",
        "TWIN_EMBEDDING_MODEL_ID",
        "TWIN_LLM_MODEL_ID",
        "TWIN_HF_OFFLINE",
        "TWIN_HOME",
        "TWIN_ARTIFACTS_URI",
        "TWIN_S3_ENDPOINT_URL",
    ):
        assert env in text, env
    assert json.loads((cr.CHART / "values.schema.json").read_text())["additionalProperties"] is False


# --------------------------------------------------------------------------- CI workflow (kind)


def test_kind_workflow_uses_what_the_repo_has():
    """The kind e2e workflow cannot run here; check it parses and names only things that exist."""
    path = cr.REPO / ".github" / "workflows" / "kind-e2e.yaml"
    text = path.read_text()
    workflow = yaml.safe_load(text)
    steps = workflow["jobs"]["e2e"]["steps"]
    run = "\n".join(s.get("run", "") for s in steps)
    assert "CANNOT run on the project's development machines" in text
    assert "images/build.sh twin-core twin-serving airflow" in run
    assert "-f charts/llm-twin/ci/kind-values.yaml" in run
    assert (cr.CHART / "ci" / "kind-values.yaml").exists()
    assert "airflow dags trigger twin_etl" in run
    assert f"secret generic {EXECUTION['secret']}" in run
    assert "NAMESPACE: llm-twin" in text and EXECUTION["namespace"] == "llm-twin"
    dags = cr.REPO / "dags" / "twin_etl.py"
    if dags.exists():
        source = dags.read_text()
        assert 'dag_id="twin_etl"' in source and '"user_full_name"' in source and '"links"' in source
