"""What users are told to set exists: every TWIN_* name in the chart's NOTES and values, the deploy docs,
compose and the kind workflow is a variable the code reads, and the documented serving keys work.

A misspelled setting is ignored silently (pydantic-settings, extra="ignore"): `TWIN_API_KEYS=key1,key2`
left serving without keys, and both serving pods crash-looped.
"""

from __future__ import annotations

import os
import re

import chart_render as cr  # tests/chart/conftest.py puts it on sys.path
import pytest

DOCUMENTS = (
    "charts/llm-twin/templates/NOTES.txt",
    "charts/llm-twin/values.yaml",
    "charts/llm-twin/ci/external-values.yaml",
    "charts/llm-twin/ci/gpu-values.yaml",
    "charts/llm-twin/ci/kind-values.yaml",
    "docs/deploy.md",
    "README.md",
    "docs/usage.md",
    "docker-compose.yaml",
    ".github/workflows/kind-e2e.yaml",
)
NAME = re.compile(r"\bTWIN_[A-Z0-9_]*[A-Z0-9_]")
# `--from-literal=TWIN_SERVE_API_KEYS='{...}'` (kubectl) or `TWIN_SERVE_API_KEYS='{...}'` (.env)
API_KEYS_EXAMPLE = re.compile(r"\b(TWIN_[A-Z_]*API_KEYS)=('([^']*)'|[^\s'\\]+)")


def _settings_variables() -> set[str]:
    """TWIN_<flat name> of every field of twin_core.settings.Settings and its groups (each group has its
    own env prefix, TWIN_SERVE_, TWIN_LLM_, ...; flat_names walks them)."""
    from twin_core.settings import flat_names

    return {"TWIN_" + name.upper() for name in flat_names()}


def _variables_read_outside_settings() -> set[str]:
    """TWIN_* variables the Airflow plugins (os.environ, find_config) and images/build.sh read."""
    names: set[str] = set()
    for path in (cr.REPO / "plugins").rglob("*.py"):
        text = path.read_text()
        names |= set(re.findall(r'environ(?:\.get\(|\[)\s*"(TWIN_[A-Z0-9_]+)"', text))
        # or through a module constant: WEBHOOK_VAR = "TWIN_ALERT_WEBHOOK_URL" ... os.environ.get(WEBHOOK_VAR)
        for const, name in re.findall(r'^(\w+) = "(TWIN_[A-Z0-9_]+)"$', text, re.M):
            if re.search(rf"environ(?:\.get\(|\[)\s*{const}\b", text):
                names.add(name)
        names |= set(re.findall(r'find_config\([^)]*"(TWIN_[A-Z0-9_]+)"', text))
    names |= set(re.findall(r"\$\{(TWIN_[A-Z0-9_]+)", (cr.REPO / "images" / "build.sh").read_text()))
    return names


def test_the_real_names_are_derived_from_the_code():
    real = _settings_variables()
    assert {"TWIN_SERVE_API_KEYS", "TWIN_LLM_API_KEY", "TWIN_MONGODB_URI", "TWIN_LINKEDIN_LI_AT"} <= real
    assert {"TWIN_API_KEYS", "TWIN_OPENAI_API_KEY"}.isdisjoint(real)
    outside = _variables_read_outside_settings()
    assert {"TWIN_EXECUTION_CONFIG", "TWIN_IMAGE_REGISTRY", "TWIN_IMAGE_TAG"} <= outside
    assert {"TWIN_ALERT_WEBHOOK_URL", "TWIN_ALERT_SLACK_CONN_ID"} <= outside  # plugins/twin_ops/notifiers.py


@pytest.mark.parametrize("document", DOCUMENTS)
def test_every_documented_twin_variable_exists(document):
    real = _settings_variables() | _variables_read_outside_settings()
    text = (cr.REPO / document).read_text()
    unknown = set()
    for name in set(NAME.findall(text)):
        if name.endswith("_"):  # a family, as in TWIN_LINKEDIN_*
            if not any(r.startswith(name) for r in real):
                unknown.add(name + "*")
        elif name not in real:
            unknown.add(name)
    assert unknown == set(), f"{document} names variables nothing reads"


def _api_keys_examples() -> list[tuple[str, str, str]]:
    found = []
    for document in DOCUMENTS:
        for m in API_KEYS_EXAMPLE.finditer((cr.REPO / document).read_text()):
            found.append((document, m.group(1), m.group(3) if m.group(3) is not None else m.group(2)))
    return found


def test_documented_serving_keys_are_accepted_by_serving(tmp_path, monkeypatch):
    """Each example Secret / .env line, set as the docs say, gives serving its keys (twin_core's
    load_auth, as `twin serve` calls it); with no keys and several authors it refuses to start."""
    from twin_core.serving.auth import load_auth
    from twin_core.settings import load_settings

    examples = _api_keys_examples()
    places = {doc for doc, _, _ in examples}
    assert {
        "README.md",
        "docs/usage.md",
        "docs/deploy.md",
        "charts/llm-twin/templates/NOTES.txt",
        ".github/workflows/kind-e2e.yaml",
    } <= places
    for document, name, value in examples:
        with monkeypatch.context() as env:
            for var in [v for v in os.environ if v.startswith("TWIN_")]:
                env.delenv(var)
            env.setenv("TWIN_HOME", str(tmp_path))  # no generated key file to fall back on
            env.setenv(name, value)
            auth = load_auth(load_settings(), authors=["Jane Doe", "Ada Quillfeather"])
            assert not auth.disabled, (document, name)


def test_a_separate_task_namespace_is_created_with_its_secret_in_the_docs():
    """`helm install` with ci/external-values.yaml fails without the task namespace (the chart puts
    objects there but never creates it), and task pods need the Secret there, serving in the release's."""
    namespace = cr.ci_values("external")["tasks"]["namespace"]
    secret = cr.chart_values()["secrets"]["existingSecret"]
    docs = (cr.REPO / "docs" / "deploy.md").read_text()
    assert f"kubectl create namespace {namespace}" in docs
    loop = re.search(r"for ns in ([\w\- ]+); do\n\s+kubectl -n \"\$ns\" create secret generic (\S+)", docs)
    assert loop, "no step creates the Secret in the task namespace"
    assert set(loop.group(1).split()) == {cr.NAMESPACE, namespace} and loop.group(2) == secret
    install = docs.index("-f charts/llm-twin/ci/external-values.yaml")
    assert docs.index(f"kubectl create namespace {namespace}") < install


def _section(docs: str, title: str) -> str:
    start = docs.index(f"\n### {title}\n")
    return docs[start : docs.index("\n### ", start + 1)]


def test_the_twin_secret_keys_include_hf_token():
    """A gated base model (gpu-8b's meta-llama/Llama-3.1-8B-Instruct) downloads only with a Hugging Face
    token; huggingface_hub reads HF_TOKEN from the environment, which envFrom fills from the twin Secret."""
    import yaml

    gpu_8b = yaml.safe_load((cr.REPO / "configs" / "training" / "gpu-8b.yaml").read_text())
    assert gpu_8b["base_model"] == "meta-llama/Llama-3.1-8B-Instruct"
    docs = (cr.REPO / "docs" / "deploy.md").read_text()
    keys = _section(docs, "Namespace and secrets")
    keys = keys[keys.index("Keys it may hold") :]
    assert "`HF_TOKEN`" in keys and gpu_8b["base_model"] in keys
    assert "HF_TOKEN" in (cr.CHART / "values.yaml").read_text().split("\nsecrets:")[0]  # its Expected keys
    assert "HF_TOKEN" in _section(docs, "Managed cluster with a GPU pool")


@pytest.mark.parametrize("walkthrough", ["Try it on kind (CPU only)", "Managed cluster with a GPU pool"])
def test_walkthroughs_list_the_served_author(walkthrough):
    """With serving.authors [] the chart renders one shared InferenceService and twin_evaluation's canary
    step has no llm-twin-<slug> to patch: both walkthroughs install with the author of their example key."""
    from twin_core.domain import slugify

    docs = (cr.REPO / "docs" / "deploy.md").read_text()
    text = _section(docs, walkthrough)
    install = text[text.index("helm install llm-twin") :]
    install = install[: install.index("```")]
    slugs = re.findall(r"--set 'serving\.authors\[0\]\.slug=([a-z0-9-]+)'", install)
    assert slugs == [slugify("Jane Doe")], install
    assert "Jane Doe" in (text if "TWIN_SERVE_API_KEYS" in text else _section(docs, "Namespace and secrets"))


def test_kind_walkthrough_trains_the_cpu_profile_in_the_image_it_builds():
    """twin_training's default in Kubernetes mode is gpu-8b (dags/twin_training.py: TWIN_TRAINING_PROFILE,
    else gpu-8b): ci/kind-values.yaml sets the CPU profile in Airflow's env (keeping values.yaml's entries,
    which a values file's list replaces), and the walkthrough builds and loads the image of that profile's
    pod (its execution_profile in configs/execution.yaml)."""
    import yaml

    assert 'os.environ.get("TWIN_TRAINING_PROFILE")' in (cr.REPO / "dags" / "twin_training.py").read_text()
    kind_env = cr.ci_values("kind")["airflow"]["env"]
    assert {"name": "TWIN_TRAINING_PROFILE", "value": "cpu-tiny"} in kind_env
    assert all(entry in kind_env for entry in cr.chart_values()["airflow"]["env"])
    profile = yaml.safe_load((cr.REPO / "configs" / "training" / "cpu-tiny.yaml").read_text())
    execution = yaml.safe_load((cr.REPO / "configs" / "execution.yaml").read_text())
    pod = execution["profiles"][profile["execution_profile"]]
    assert profile["device"] == "cpu" and "nvidia.com/gpu" not in pod["limits"]
    text = _section((cr.REPO / "docs" / "deploy.md").read_text(), "Try it on kind (CPU only)")
    build = re.search(r"images/build\.sh ([\w -]+)\n", text).group(1).split()
    loaded = re.search(r"for image in ([\w -]+); do\n\s+kind load docker-image", text).group(1).split()
    assert pod["image"] in build and pod["image"] in loaded
    assert "TWIN_TRAINING_PROFILE=cpu-tiny" in text


def test_first_dag_trigger_reserializes_before_unpausing():
    """Right after the install the DAG processor may not have stored twin_etl yet: the kind workflow runs
    `airflow dags reserialize` before unpausing it, and so do the docs."""
    workflow = (cr.REPO / ".github" / "workflows" / "kind-e2e.yaml").read_text()
    for text in (workflow, _section((cr.REPO / "docs" / "deploy.md").read_text(), "Trigger the first DAG")):
        assert text.index("airflow dags reserialize") < text.index("airflow dags unpause twin_etl")


def test_docs_say_upgrades_keep_the_deployed_model():
    upgrades = _section((cr.REPO / "docs" / "deploy.md").read_text(), "Upgrades")
    assert "`helm upgrade` keeps what is running" in upgrades and "**The deployed model.**" in upgrades
    assert "llm-twin-airflow-jwt-secret" in upgrades and "airflowKeys.generate=false" in upgrades


def test_docs_say_what_a_key_rotation_needs(tmp_path):
    """KServe gives the storage initializer references to the Secrets the serving account lists and reads
    the S3 endpoint from that Secret's annotations, so the chart copies the twin Secret's S3 keys and
    HF_TOKEN into Secrets of its own, which a rotation reaches only at `helm upgrade`. Every such copy is
    named in "Rotating the keys", with the one command that refreshes them and the way around it."""
    twin = {"AWS_ACCESS_KEY_ID": "QUtJQQ==", "AWS_SECRET_ACCESS_KEY": "c2VjcmV0", "HF_TOKEN": "aGZfdG9rZW4="}
    call = 'lookup "v1" "Secret" .Release.Namespace .Values.secrets.existingSecret'
    answers = {cr.chart_values()["secrets"]["existingSecret"]: {"data": twin}}
    for template in ("serving-s3-secret.yaml", "serving-hf-secret.yaml"):
        chart = cr.answering_lookup(tmp_path, template, call, answers)
    values = {"artifacts": {"devObjectStore": {"enabled": False}}}
    objs = cr.objects(cr.render(values, api_versions=(cr.KSERVE_API,), chart_dir=chart))
    copied = set(twin.items())
    copies = {s["metadata"]["name"] for s in cr.find(objs, "Secret") if set((s.get("data") or {}).items()) & copied}
    assert copies == {"llm-twin-serving-s3", "llm-twin-serving-hf"}
    section = _section((cr.REPO / "docs" / "deploy.md").read_text(), "Serving and s3:// models")
    rotation = section[section.index("**Rotating the keys.**") :]
    assert f"helm upgrade {cr.RELEASE} charts/llm-twin -n {cr.NAMESPACE} --reuse-values" in rotation
    assert all(f"`{name}`" in rotation for name in copies)
    assert "serving.s3Credentials.existingSecret" in rotation and "serving.hfCredentials.existingSecret" in rotation
