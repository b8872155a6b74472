"""charts/llm-twin rendered offline with the real Helm engine and validated against real schemas."""

from __future__ import annotations

import json

import chart_render as cr  # noqa: E402  (tests/chart/conftest.py puts it on sys.path)
import helm_python  # noqa: F401 - a dev dependency: missing is a failure, not a skip
import kubernetes_validate  # noqa: F401 - a dev dependency: missing is a failure, not a skip
import pytest

BOTH_APIS = (cr.KSERVE_API, *cr.PROMETHEUS_APIS)

# name -> (values, api versions the simulated cluster serves)
VARIANTS = {
    "defaults": (None, ()),
    "defaults+kserve+prometheus": (None, BOTH_APIS),
    "kserve-only": (None, (cr.KSERVE_API,)),
    "prometheus-only": (None, cr.PROMETHEUS_APIS),
    "kind-cpu-only": ("kind", BOTH_APIS),
    "gpu-training": ("gpu", BOTH_APIS),
    "external-stores": ("external", BOTH_APIS),
    "external-mongodb-uri": ({"mongodb": {"mode": "external", "external": {"uri": "mongodb://db.example:27017"}}}, ()),
    "all-dependencies-disabled": (
        {
            "airflow": {"enabled": False},
            "qdrant": {"enabled": False},
            "vectorStore": {"url": "http://qdrant.example:6333"},
            "artifacts": {"devObjectStore": {"enabled": False}},
            "mongodb": {"mode": "external", "external": {"uriFromSecret": True}},
        },
        BOTH_APIS,
    ),
}


def _values(spec):
    return cr.ci_values(spec) if isinstance(spec, str) else spec


@pytest.fixture(scope="module")
def renders():
    return {
        name: cr.objects(cr.render(_values(values), api_versions=apis)) for name, (values, apis) in VARIANTS.items()
    }


# --------------------------------------------------------------------------- lint


def test_lint_has_no_errors():
    report = cr.helm().lint(cr.CHART, namespace=cr.NAMESPACE, kube_version="v1.29.0")
    errors = [m for m in report["messages"] if m["severity"] >= 3]
    assert errors == [], errors
    # The only warning allowed is the documented one: dependencies are fetched by `helm dependency build`.
    warnings = [m["error"] for m in report["messages"] if m["severity"] == 2]
    assert all("missing these dependencies" in w for w in warnings), warnings


def test_strict_lint_with_dependencies_present(tmp_path):
    chart = cr.with_stub_dependencies(tmp_path)
    for values in (None, cr.ci_values("kind"), cr.ci_values("gpu"), cr.ci_values("external")):
        report = cr.helm().lint(chart, values, strict=True, namespace=cr.NAMESPACE, kube_version="v1.29.0")
        assert report["errors"] == [], report


# --------------------------------------------------------------------------- every variant validates


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_every_object_validates(renders, variant):
    objs = renders[variant]
    assert objs, "nothing rendered"
    errors = [e for o in objs for e in cr.validate_object(o)]
    assert errors == []


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_objects_are_namespaced_and_unique(renders, variant):
    seen = set()
    for o in renders[variant]:
        key = (o["kind"], o["metadata"].get("namespace"), o["metadata"]["name"])
        assert key not in seen, f"duplicate {key}"
        seen.add(key)
        assert o["metadata"].get("namespace"), f"{key} has no namespace"
        assert o["metadata"]["labels"]["app.kubernetes.io/part-of"] == "llm-twin"


# --------------------------------------------------------------------------- capabilities


def test_inferenceservice_only_with_kserve_api(renders):
    assert cr.find(renders["defaults"], "InferenceService") == []
    assert cr.find(renders["prometheus-only"], "InferenceService") == []
    isvc = cr.find(renders["kserve-only"], "InferenceService")
    assert len(isvc) == 1
    spec = isvc[0]["spec"]
    assert set(spec) == {"predictor", "transformer"}
    for component in ("predictor", "transformer"):
        (container,) = spec[component]["containers"]
        assert container["image"] == "ghcr.io/llm-twin/twin-serving:0.1.0"
        assert container["args"][:2] == ["--component", component]
        assert container["readinessProbe"]["httpGet"]["path"] == "/v2/health/ready"
        assert container["livenessProbe"]["httpGet"]["path"] == "/v2/health/live"
    assert "canaryTrafficPercent" not in spec["predictor"]


def _arg(args: list[str], flag: str) -> str:
    assert args.count(flag) == 1, args
    return args[args.index(flag) + 1]


@pytest.mark.parametrize("variant", ["kserve-only", "gpu-training", "kind-cpu-only"])
def test_predictor_serves_the_model_name_the_transformer_calls(renders, variant):
    """KServe appends `--model_name <InferenceService name>` to a custom transformer's args, so the
    transformer calls the predictor at /v1/models/<isvc name>:predict: the predictor must serve it."""
    for isvc in cr.find(renders[variant], "InferenceService"):
        name = isvc["metadata"]["name"]
        (predictor,) = isvc["spec"]["predictor"]["containers"]
        (transformer,) = isvc["spec"]["transformer"]["containers"]
        assert _arg(predictor["args"], "--model-name") == name
        assert _arg(transformer["args"], "--model-name") == name


def test_one_model_name_per_author_inference_service():
    authors = {"serving": {"authors": [{"slug": "ada"}, {"slug": "oskar"}]}}
    isvcs = cr.find(cr.objects(cr.render(authors, api_versions=(cr.KSERVE_API,))), "InferenceService")
    assert {_arg(isvc["spec"]["predictor"]["containers"][0]["args"], "--model-name") for isvc in isvcs} == {
        "llm-twin-ada",
        "llm-twin-oskar",
    }


def test_notes_unpause_twin_etl_before_triggering_it():
    # DAGs are created paused (airflow.config.core.dags_are_paused_at_creation): a trigger alone queues forever
    assert cr.chart_values()["airflow"]["config"]["core"]["dags_are_paused_at_creation"] == "True"
    text = cr.notes(cr.render(None))
    unpause = 'exec "$SCHEDULER" -- airflow dags unpause twin_etl'
    assert unpause in text
    assert text.index(unpause) < text.index("airflow dags trigger twin_etl")


def test_notes_explain_missing_kserve():
    absent = cr.notes(cr.render(None))
    present = cr.notes(cr.render(None, api_versions=(cr.KSERVE_API,)))
    assert "KServe (serving.kserve.io/v1beta1) is not installed" in absent
    assert "get inferenceservice llm-twin" in present


def test_prometheus_rule_only_with_operator_api(renders):
    assert cr.find(renders["defaults"], "PrometheusRule") == []
    assert cr.find(renders["kserve-only"], "PrometheusRule") == []
    (rule,) = cr.find(renders["prometheus-only"], "PrometheusRule")
    alerts = {r["alert"] for g in rule["spec"]["groups"] for r in g["rules"]}
    assert alerts == {"LLMTwinDagRunFailed", "LLMTwinDriftDetected", "LLMTwinServingErrors", "LLMTwinRequestLogFailing"}


def test_monitors_only_with_operator_api(renders):
    """Without a PodMonitor / ServiceMonitor the Prometheus Operator scrapes nothing of the twin (it
    ignores prometheus.io annotations), so no alert of the PrometheusRule could ever fire."""
    for variant in ("defaults", "kserve-only"):
        assert cr.find(renders[variant], "PodMonitor") == [] and cr.find(renders[variant], "ServiceMonitor") == []
    # no KServe: no serving pods to scrape, but Airflow's StatsD exporter is there
    assert cr.find(renders["prometheus-only"], "PodMonitor") == []
    assert len(cr.find(renders["prometheus-only"], "ServiceMonitor")) == 1
    # the operator serves PrometheusRule but (an older one) not the monitors: none rendered
    objs = cr.objects(cr.render(None, api_versions=(cr.KSERVE_API, cr.PROMETHEUS_API)))
    assert cr.find(objs, "PodMonitor") == [] and cr.find(objs, "ServiceMonitor") == []
    assert len(cr.find(objs, "PrometheusRule")) == 1


def test_pod_monitor_scrapes_every_serving_container(renders):
    objs = renders["defaults+kserve+prometheus"]
    (monitor,) = cr.find(objs, "PodMonitor")
    assert monitor["metadata"]["namespace"] == cr.NAMESPACE
    assert monitor["spec"]["namespaceSelector"] == {"matchNames": [cr.NAMESPACE]}
    (endpoint,) = monitor["spec"]["podMetricsEndpoints"]
    assert endpoint["path"] == "/metrics"
    selector = monitor["spec"]["selector"]["matchLabels"]
    (isvc,) = cr.find(objs, "InferenceService")
    for component in ("predictor", "transformer"):
        spec = isvc["spec"][component]
        assert selector.items() <= spec["labels"].items(), component  # KServe puts these labels on the pods
        (container,) = spec["containers"]
        ports = {p["name"]: p["containerPort"] for p in container["ports"]}
        assert ports[endpoint["port"]] == cr.chart_values()["serving"]["port"], component
    # the 5xx-ratio alert reads the series this endpoint exposes, by the namespace label Prometheus adds
    (rule,) = cr.find(objs, "PrometheusRule")
    exprs = " ".join(r["expr"] for g in rule["spec"]["groups"] for r in g["rules"])
    assert f'twin_serving_requests_total{{namespace="{cr.NAMESPACE}"' in exprs


def test_service_monitor_scrapes_airflow_statsd(renders):
    (monitor,) = cr.find(renders["defaults+kserve+prometheus"], "ServiceMonitor")
    # the Airflow chart's statsd Service (chart/templates/statsd/statsd-service.yaml): these labels and
    # the statsd-scrape port, where the exporter serves airflow_dagrun_failed_count and the drift counter
    statsd = {"tier": "airflow", "component": "statsd", "release": cr.RELEASE}
    assert monitor["spec"]["selector"]["matchLabels"] == statsd
    assert monitor["spec"]["namespaceSelector"] == {"matchNames": [cr.NAMESPACE]}
    (endpoint,) = monitor["spec"]["endpoints"]
    assert endpoint["port"] == "statsd-scrape" and endpoint["path"] == "/metrics"
    # no Airflow in the release (or its StatsD off): nothing to scrape
    assert cr.find(renders["all-dependencies-disabled"], "ServiceMonitor") == []
    no_statsd = cr.objects(cr.render({"airflow": {"statsd": {"enabled": False}}}, api_versions=BOTH_APIS))
    assert cr.find(no_statsd, "ServiceMonitor") == [] and len(cr.find(no_statsd, "PodMonitor")) == 1


def test_monitors_carry_the_alert_labels_and_can_be_disabled():
    values = {"alerts": {"labels": {"release": "kube-prometheus-stack"}, "scrape": {"enabled": False}}}
    objs = cr.objects(cr.render(values, api_versions=BOTH_APIS))
    assert cr.find(objs, "PodMonitor") == [] and cr.find(objs, "ServiceMonitor") == []
    values["alerts"]["scrape"] = {"enabled": True, "interval": "15s"}
    objs = cr.objects(cr.render(values, api_versions=BOTH_APIS))
    for kind, endpoints in (("PodMonitor", "podMetricsEndpoints"), ("ServiceMonitor", "endpoints")):
        (monitor,) = cr.find(objs, kind)
        assert monitor["metadata"]["labels"]["release"] == "kube-prometheus-stack"
        assert monitor["spec"][endpoints][0]["interval"] == "15s"
    assert [e for o in objs for e in cr.validate_object(o)] == []


def test_alerts_disabled_renders_nothing():
    objs = cr.objects(cr.render({"alerts": {"enabled": False}}, api_versions=BOTH_APIS))
    assert cr.find(objs, "PrometheusRule") == []


# --------------------------------------------------------------------------- GPU pool


def _execution(objs):
    (cm,) = cr.find(objs, "ConfigMap", "llm-twin-execution")
    import yaml

    return yaml.safe_load(cm["data"]["execution.yaml"])


def test_gpu_training_block(renders):
    gpu = _execution(renders["gpu-training"])["profiles"]["gpu"]
    assert gpu["image"] == "twin-trainer"
    assert gpu["limits"]["nvidia.com/gpu"] == "1"
    assert gpu["node_selector"] == {"llm-twin/pool": "gpu"}
    assert gpu["tolerations"] == [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}]
    (isvc,) = cr.find(renders["gpu-training"], "InferenceService")
    predictor = isvc["spec"]["predictor"]
    assert predictor["nodeSelector"] == {"llm-twin/pool": "gpu"}
    assert predictor["containers"][0]["resources"]["limits"]["nvidia.com/gpu"] == "1"
    env = {e["name"]: e.get("value") for e in predictor["containers"][0]["env"]}
    assert env["TWIN_LLM_DEVICE"] == "cuda"  # a GPU predictor fails at start if its image cannot use the GPU


def test_gpu_values_serve_in_standard_mode_with_no_fixed_canary(renders):
    """The GPU walkthrough installs no Knative, and a stock Knative refuses the predictor's pod
    securityContext, nodeSelector and tolerations: ci/gpu-values.yaml keeps Standard mode. The canary
    share is twin deploy's (spec.canary), never a value left in the values."""
    serving = cr.ci_values("gpu")["serving"]
    assert serving["deploymentMode"] == "Standard" and "canaryTrafficPercent" not in serving
    (isvc,) = cr.find(renders["gpu-training"], "InferenceService")
    assert isvc["metadata"]["annotations"]["serving.kserve.io/deploymentMode"] == "Standard"
    assert "canaryTrafficPercent" not in isvc["spec"]["predictor"] and "canary" not in isvc["spec"]
    docs = (cr.REPO / "docs" / "deploy.md").read_text()
    assert "needed for canaries" not in docs  # Standard mode runs twin deploy's canaries too
    prerequisites = docs[docs.index("### Prerequisites") : docs.index("### Chart dependencies")]
    for feature in ("podspec-securitycontext", "podspec-nodeselector", "podspec-tolerations"):
        assert f"kubernetes.{feature}" in prerequisites, feature  # what Knative mode needs switched on


def test_cpu_only_cluster_has_no_gpu_requests(renders):
    objs = renders["kind-cpu-only"]
    gpu = _execution(objs)["profiles"]["gpu"]
    assert "node_selector" not in gpu and "tolerations" not in gpu
    assert "nvidia.com/gpu" not in json.dumps(objs)
    assert "TWIN_LLM_DEVICE" not in json.dumps(objs)  # the CPU predictor keeps the default (auto)


def test_gpu_count_is_configurable():
    objs = cr.objects(cr.render({"training": {"gpu": {"count": 4}}}))
    assert _execution(objs)["profiles"]["gpu"]["limits"]["nvidia.com/gpu"] == "4"


# --------------------------------------------------------------------------- stores and dependencies


def _settings(objs, namespace=cr.NAMESPACE):
    (cm,) = [o for o in cr.find(objs, "ConfigMap", "llm-twin-settings") if o["metadata"]["namespace"] == namespace]
    return cm["data"]


def test_default_store_wiring(renders):
    data = _settings(renders["defaults"])
    assert data["TWIN_MONGODB_URI"] == "mongodb://llm-twin-mongodb.llm-twin.svc:27017"
    assert data["TWIN_QDRANT_URL"] == "http://llm-twin-qdrant.llm-twin.svc:6333"
    assert data["TWIN_ARTIFACTS_URI"] == "s3://llm-twin/artifacts"
    assert data["TWIN_S3_ENDPOINT_URL"] == "http://llm-twin-object-store.llm-twin.svc:8333"
    assert data["TWIN_EXECUTION"] == "kubernetes"
    assert cr.find(renders["defaults"], "StatefulSet", "llm-twin-mongodb")
    # the bucket Job targets the same endpoint and bucket the tasks use
    (job,) = cr.find(renders["defaults"], "Job", "llm-twin-create-bucket")
    script = job["spec"]["template"]["spec"]["containers"][0]["command"][-1]
    assert 'endpoint_url="http://llm-twin-object-store.llm-twin.svc:8333"' in script
    assert 'Bucket="llm-twin"' in script


def test_external_mongodb(renders):
    objs = renders["external-mongodb-uri"]
    assert _settings(objs)["TWIN_MONGODB_URI"] == "mongodb://db.example:27017"
    assert cr.find(objs, "StatefulSet", "llm-twin-mongodb") == []
    assert "llm-twin-mongodb" not in json.dumps(objs)
    # a URI with credentials comes from the Secret: the ConfigMap must not shadow it
    ext = renders["external-stores"]
    assert all("TWIN_MONGODB_URI" not in cm["data"] for cm in cr.find(ext, "ConfigMap", "llm-twin-settings"))


def test_external_stores_in_a_private_range_are_reachable_from_serving(renders):
    """ci/external-values.yaml: MongoDB and Qdrant in 10.20.0.0/16, which the internet rules exclude;
    serving queries Qdrant and writes its request log to MongoDB, as the task pods do."""
    objs = renders["external-stores"]
    (tasks,) = cr.find(objs, "NetworkPolicy", "llm-twin-tasks")
    (serving,) = cr.find(objs, "NetworkPolicy", "llm-twin-serving")
    for policy in (tasks, serving):
        private = [r for r in policy["spec"]["egress"] if r.get("to") == [{"ipBlock": {"cidr": "10.20.0.0/16"}}]]
        assert len(private) == 1, policy["metadata"]["name"]
        assert {p["port"] for p in private[0]["ports"]} == {27017, 6333}


def test_task_namespace_can_differ(renders):
    objs = renders["external-stores"]
    namespaces = {o["metadata"]["namespace"] for o in cr.find(objs, "ConfigMap", "llm-twin-settings")}
    assert namespaces == {"llm-twin", "llm-twin-tasks"}
    (sa,) = cr.find(objs, "ServiceAccount", "llm-twin-tasks")
    assert sa["metadata"]["namespace"] == "llm-twin-tasks"
    (role,) = cr.find(objs, "Role", "llm-twin-pod-launcher")
    assert role["metadata"]["namespace"] == "llm-twin-tasks"
    (binding,) = cr.find(objs, "RoleBinding", "llm-twin-pod-launcher")
    assert {s["namespace"] for s in binding["subjects"]} == {"llm-twin"}
    assert _execution(objs)["namespace"] == "llm-twin-tasks"


@pytest.mark.parametrize(
    "values, absent",
    [
        (
            {"qdrant": {"enabled": False}, "vectorStore": {"url": "http://q.example:6333"}},
            ["llm-twin-qdrant", '"app.kubernetes.io/name": "qdrant"'],
        ),
        ({"airflow": {"enabled": False}}, ["llm-twin-airflow", "airflow-scheduler", "airflow-worker"]),
        ({"artifacts": {"devObjectStore": {"enabled": False}}}, ["object-store", "seaweedfs", "create-bucket"]),
        ({"mongodb": {"mode": "external", "external": {"uri": "mongodb://m.example:27017"}}}, ["llm-twin-mongodb"]),
    ],
    ids=["qdrant", "airflow", "dev-object-store", "mongodb"],
)
def test_disabled_dependency_leaves_no_reference(values, absent):
    objs = cr.objects(cr.render(values, api_versions=BOTH_APIS))
    text = json.dumps(objs)
    for needle in absent:
        assert needle not in text, f"{needle!r} still referenced with {values}"
    assert [e for o in objs for e in cr.validate_object(o)] == []


def test_no_launcher_binding_without_airflow(renders):
    objs = renders["all-dependencies-disabled"]
    assert cr.find(objs, "RoleBinding") == [] and cr.find(objs, "Role") == []
    # an Airflow outside the release is bound explicitly
    extra = {
        "airflow": {"enabled": False},
        "rbac": {"extraLaunchers": [{"name": "airflow-worker", "namespace": "ops"}]},
    }
    (binding,) = cr.find(cr.objects(cr.render(extra)), "RoleBinding")
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": "airflow-worker", "namespace": "ops"}]


def test_dependency_conditions_switch_the_subcharts(tmp_path):
    chart = cr.with_stub_dependencies(tmp_path)

    def markers(values):
        return {
            o["metadata"]["name"]
            for o in cr.objects(cr.render(values, chart_dir=chart))
            if o["metadata"]["name"].startswith("stub-")
        }

    assert markers(None) == {"stub-airflow", "stub-qdrant"}
    assert markers({"airflow": {"enabled": False}}) == {"stub-qdrant"}
    assert markers({"qdrant": {"enabled": False}, "vectorStore": {"url": "http://q.example:6333"}}) == {"stub-airflow"}


# --------------------------------------------------------------------------- pod security and network


@pytest.mark.parametrize("variant", ["defaults+kserve+prometheus", "gpu-training", "kind-cpu-only"])
def test_restricted_pod_security(renders, variant):
    specs = cr.pod_specs(renders[variant])
    assert specs
    for owner, spec in specs:
        psc = spec["securityContext"]
        assert psc["runAsNonRoot"] is True and psc["runAsUser"] >= 10000, owner
        assert psc["seccompProfile"] == {"type": "RuntimeDefault"}, owner
        assert spec["automountServiceAccountToken"] is False, owner
        for c in spec["containers"]:
            sc = c["securityContext"]
            assert sc["allowPrivilegeEscalation"] is False, owner
            assert sc["readOnlyRootFilesystem"] is True, owner
            assert sc["capabilities"]["drop"] == ["ALL"], owner
            assert c["resources"]["requests"] and c["resources"]["limits"], owner


def test_network_policies(renders):
    objs = renders["defaults+kserve+prometheus"]
    (tasks,) = cr.find(objs, "NetworkPolicy", "llm-twin-tasks")
    assert tasks["spec"]["podSelector"]["matchLabels"] == {
        "app.kubernetes.io/part-of": "llm-twin",
        "app.kubernetes.io/component": "task",
    }
    assert tasks["spec"]["ingress"] == []
    egress = json.dumps(tasks["spec"]["egress"])
    for needle in ('"mongodb"', '"qdrant"', '"object-store"', "0.0.0.0/0", '"port": 53'):
        assert needle in egress
    (serving,) = cr.find(objs, "NetworkPolicy", "llm-twin-serving")
    # the only internet access of serving: HTTPS for the default base model (hf://), never private ranges
    assert _internet_rules(serving) == [
        {
            "to": [{"ipBlock": {"cidr": "0.0.0.0/0", "except": cr.chart_values()["networkPolicy"]["internetExcept"]}}],
            "ports": [{"port": 443, "protocol": "TCP"}],
        }
    ]
    # every component pod is covered by a policy
    selectors = [np["spec"]["podSelector"]["matchLabels"] for np in cr.find(objs, "NetworkPolicy")]
    for owner, _spec in cr.pod_specs(objs):
        if owner.startswith("InferenceService") or owner.startswith("Job"):
            continue
        (workload,) = [o for o in objs if f"{o['kind']}/{o['metadata']['name']}" == owner]
        labels = workload["spec"]["template"]["metadata"]["labels"]
        assert any(all(labels.get(k) == v for k, v in sel.items()) for sel in selectors), owner


def _internet_rules(policy: dict) -> list[dict]:
    return [r for r in policy["spec"]["egress"] if any("ipBlock" in peer for peer in r.get("to", []))]


def _serving_internet_ports(values: dict) -> set[int]:
    objs = cr.objects(cr.render(values, api_versions=(cr.KSERVE_API,)))
    assert [e for o in objs for e in cr.validate_object(o)] == []
    (serving,) = cr.find(objs, "NetworkPolicy", "llm-twin-serving")
    rules = _internet_rules(serving)
    for rule in rules:
        (peer,) = rule["to"]
        assert peer["ipBlock"]["cidr"] == "0.0.0.0/0" and "10.0.0.0/8" in peer["ipBlock"]["except"]
    return {p["port"] for r in rules for p in r["ports"]}


def test_serving_may_download_its_models_from_the_internet():
    """KServe's storage initializer (an init container of the predictor pod) fetches hf:// and https://
    models itself: without egress to the internet the default InferenceService never gets Ready."""
    s3_base = {"storageUri": "s3://llm-twin/models/base", "version": "base"}
    # every served URI in the artifact store (the dev store, in the cluster): no internet at all
    assert _serving_internet_ports({"serving": {"baseModel": s3_base}}) == set()
    # an author's production weights on the Hub, or a base model over https://, open 443
    hub_author = {"baseModel": s3_base, "authors": [{"slug": "ada", "storageUri": "hf://org/ada-twin"}]}
    assert _serving_internet_ports({"serving": hub_author}) == {443}
    https_base = {"storageUri": "https://models.example.com/twin.tar.gz", "version": "base"}
    # the switch turns it off (models mirrored in the cluster)
    assert (
        _serving_internet_ports(
            {"serving": {"baseModel": https_base}, "networkPolicy": {"servingDownloadsModels": False}}
        )
        == set()
    )


def test_only_the_deploy_steps_get_the_kubernetes_api(renders):
    """`twin deploy` (twin_evaluation's canary and watch pods) patches the InferenceServices: the deployer
    service account mounts its token, holds the llm-twin-deployer Role and, for pods labelled as
    deployers only, reaches the API server; the task service account keeps no token."""
    objs = renders["external-stores"]  # the task namespace differs from the release namespace
    (tasks_sa,) = cr.find(objs, "ServiceAccount", "llm-twin-tasks")
    assert tasks_sa["automountServiceAccountToken"] is False
    (sa,) = cr.find(objs, "ServiceAccount", "llm-twin-deployer")
    assert sa["metadata"]["namespace"] == "llm-twin-tasks" and sa["automountServiceAccountToken"] is True
    (binding,) = cr.find(objs, "RoleBinding", "llm-twin-deployer")
    assert binding["metadata"]["namespace"] == "llm-twin"  # where the InferenceServices live
    subject = {"kind": "ServiceAccount", "name": "llm-twin-deployer", "namespace": "llm-twin-tasks"}
    assert binding["subjects"] == [subject]
    assert _execution(objs)["deployer_service_account"] == "llm-twin-deployer"
    (policy,) = cr.find(objs, "NetworkPolicy", "llm-twin-deployer")
    assert policy["metadata"]["namespace"] == "llm-twin-tasks"
    assert policy["spec"]["podSelector"]["matchLabels"] == {
        **cr.chart_values()["networkPolicy"]["taskPodSelector"],
        "llm-twin/deployer": "true",
    }
    assert policy["spec"]["policyTypes"] == ["Egress"] and "ingress" not in policy["spec"]
    assert policy["spec"]["egress"] == [
        {
            "to": [{"ipBlock": {"cidr": "0.0.0.0/0"}}],
            "ports": [{"port": 443, "protocol": "TCP"}, {"port": 6443, "protocol": "TCP"}],
        }
    ]
    # no other policy opens the API server port 6443
    others = [p for p in cr.find(objs, "NetworkPolicy") if p["metadata"]["name"] != "llm-twin-deployer"]
    assert '"port": 6443' not in json.dumps(others)
    # the API server's address and port are values
    narrow = {"networkPolicy": {"apiServer": {"cidrs": ["172.20.0.1/32", "10.0.0.10/32"], "ports": [443]}}}
    narrowed = cr.objects(cr.render(narrow))
    (policy,) = cr.find(narrowed, "NetworkPolicy", "llm-twin-deployer")
    assert policy["spec"]["egress"] == [
        {
            "to": [{"ipBlock": {"cidr": "172.20.0.1/32"}}, {"ipBlock": {"cidr": "10.0.0.10/32"}}],
            "ports": [{"port": 443, "protocol": "TCP"}],
        }
    ]
    assert [e for o in narrowed for e in cr.validate_object(o)] == []


def test_network_policy_can_be_disabled():
    assert cr.find(cr.objects(cr.render({"networkPolicy": {"enabled": False}})), "NetworkPolicy") == []


# --------------------------------------------------------------------------- bad values


BAD_VALUES = [
    ("negative replicas", {"serving": {"predictor": {"minReplicas": -1}}}, "/serving/predictor/minReplicas"),
    ("zero max replicas", {"serving": {"transformer": {"maxReplicas": 0}}}, "/serving/transformer/maxReplicas"),
    ("gpu count as string", {"training": {"gpu": {"count": "1"}}}, "/training/gpu/count"),
    ("unknown executor", {"airflow": {"executor": "CeleryExecutr"}}, "/airflow/executor"),
    ("missing secret name", {"secrets": {"existingSecret": ""}}, "/secrets/existingSecret"),
    ("secret name removed", {"secrets": {"existingSecret": None}}, "existingSecret"),
    ("unknown top-level key", {"servng": {"enabled": True}}, "servng"),
    ("image tag as number", {"images": {"tag": 0.1}}, "/images/tag"),
    ("canary without knative", {"serving": {"canaryTrafficPercent": 10}}, "/serving/canaryTrafficPercent"),
    (
        "canary above 100",
        {"serving": {"deploymentMode": "Knative", "canaryTrafficPercent": 120}},
        "/serving/canaryTrafficPercent",
    ),
    ("unknown deployment mode", {"serving": {"deploymentMode": "Serverles"}}, "/serving/deploymentMode"),
    ("bad log level", {"settings": {"logLevel": "VERBOSE"}}, "/settings/logLevel"),
    ("non-TWIN extra env", {"settings": {"extraEnv": {"AWS_SECRET_ACCESS_KEY": "x"}}}, "/settings/extraEnv"),
    ("artifacts not s3", {"artifacts": {"uri": "/data/artifacts"}}, "/artifacts/uri"),
    ("external mongodb without uri", {"mongodb": {"mode": "external"}}, "/mongodb/external"),
    (
        "bad mongodb uri",
        {"mongodb": {"mode": "external", "external": {"uri": "postgres://x"}}},
        "/mongodb/external/uri",
    ),
    ("qdrant off without url", {"qdrant": {"enabled": False}}, "/vectorStore/url"),
    (
        "cpu quantity as number",
        {"tasks": {"profiles": {"cpu": {"requests": {"cpu": 1}}}}},
        "/tasks/profiles/cpu/requests/cpu",
    ),
    ("qdrant zero replicas", {"qdrant": {"replicaCount": 0}}, "/qdrant/replicaCount"),
    ("api server port out of range", {"networkPolicy": {"apiServer": {"ports": [70000]}}}, "/networkPolicy/apiServer"),
    ("api server not a cidr", {"networkPolicy": {"apiServer": {"cidrs": ["kubernetes"]}}}, "/networkPolicy/apiServer"),
    ("deployer account not a name", {"tasks": {"deployer": {"serviceAccountName": "Deployer"}}}, "/tasks/deployer"),
]


@pytest.mark.parametrize("values, key", [(v, k) for _, v, k in BAD_VALUES], ids=[n for n, _, _ in BAD_VALUES])
def test_schema_rejects_bad_values(values, key):
    h = cr.helm()
    with h.Chart.load(cr.CHART) as chart, pytest.raises(h.HelmValuesError) as exc:
        chart.validate_schema(values)
    assert key in str(exc.value)


def test_install_render_rejects_bad_values_too():
    h = cr.helm()
    with pytest.raises(h.HelmError, match="/training/gpu/count"):
        cr.render({"training": {"gpu": {"count": "2"}}})


@pytest.mark.parametrize("name", ["kind", "gpu", "external"])
def test_ci_value_sets_are_valid(name):
    with cr.helm().Chart.load(cr.CHART) as chart:
        chart.validate_schema(cr.ci_values(name))


# --------------------------------------------------------------------------- audit fixes


def test_pull_secrets_reach_every_pod_of_the_chart():
    """images.pullSecrets covers task, serving and store pods (docs/deploy.md, "ImagePullBackOff"): the
    object store's StatefulSet had none."""
    values = {"images": {"pullSecrets": ["regcred"]}}
    objs = cr.objects(cr.render(values, api_versions=BOTH_APIS))
    assert [e for o in objs for e in cr.validate_object(o)] == []
    owners = set()
    for owner, spec in cr.pod_specs(objs):
        assert spec.get("imagePullSecrets") == [{"name": "regcred"}], owner
        owners.add(owner)
    assert {"StatefulSet/llm-twin-object-store", "StatefulSet/llm-twin-mongodb", "Job/llm-twin-create-bucket"} <= owners
    for name in ("llm-twin-tasks", "llm-twin-deployer", "llm-twin-serving"):
        (sa,) = cr.find(objs, "ServiceAccount", name)
        assert sa["imagePullSecrets"] == [{"name": "regcred"}], name


def test_kubernetes_executor_starts_workers_in_the_release_namespace(tmp_path):
    """airflow.config.kubernetes_executor.namespace was `llm-twin` whatever the namespace: in any other,
    KubernetesExecutor started its workers where the Airflow chart's RBAC, airflow.cfg and pod template are
    not. The Airflow chart renders the value with `tpl`, in the release's namespace."""
    chart = cr.with_stub_dependencies(tmp_path)
    objs = cr.objects(cr.render({"airflow": {"executor": "KubernetesExecutor"}}, chart_dir=chart, namespace="ml-prod"))
    _, airflow_cfg = cr.stub_airflow(objs)
    section = airflow_cfg[airflow_cfg.index("[kubernetes_executor]") :].split("\n\n")[0]
    assert "namespace = ml-prod" in section.splitlines()
    assert _execution(objs)["namespace"] == "ml-prod"  # and the task pods, with tasks.namespace empty


def test_notes_point_knative_users_at_the_url_not_a_port_forward():
    """A Knative InferenceService has no <name>-transformer Service to port-forward to (Knative routes it
    through its ingress): NOTES printed the Standard-mode command in both modes."""
    authors = [{"slug": "ada"}]
    knative_values = {"serving": {"deploymentMode": "Knative", "authors": authors}}
    knative = cr.notes(cr.render(knative_values, api_versions=BOTH_APIS))
    assert "port-forward svc/llm-twin-ada-transformer" not in knative
    assert "kubectl -n llm-twin get inferenceservice llm-twin-ada -o jsonpath='{.status.url}'" in knative
    standard = cr.notes(cr.render({"serving": {"authors": authors}}, api_versions=BOTH_APIS))
    assert "kubectl -n llm-twin port-forward svc/llm-twin-ada-transformer 8081:80" in standard
    assert ".status.url" not in standard and "serving.authors is empty" not in standard
    assert "serving.authors is empty" in cr.notes(cr.render(None, api_versions=BOTH_APIS))


def test_notes_reserialize_the_dags_before_unpausing():
    text = cr.notes(cr.render(None))
    reserialize = 'exec "$SCHEDULER" -- airflow dags reserialize'
    assert reserialize in text and text.index(reserialize) < text.index("airflow dags unpause twin_etl")


def _documented_qdrant_api_key() -> dict:
    """The qdrant.apiKey example of values.yaml's comment, as YAML."""
    import yaml

    lines = (cr.CHART / "values.yaml").read_text().splitlines()
    start = lines.index("  #   apiKey:")
    block = [line.replace("  #", "", 1) for line in lines[start : start + 3]]
    return yaml.safe_load("\n".join(block))["apiKey"]


def test_qdrant_api_key_comes_from_the_twin_secret_or_not_at_all():
    """`qdrant.apiKey: true` makes the Qdrant chart generate a random key (qdrant-helm 1.18.1,
    templates/_helpers.tpl "qdrant.secret"), which the twin pods never get, and a string puts a secret in
    the values: the schema takes false or the Qdrant chart's valueFrom.secretKeyRef, which the values
    document for the twin Secret's TWIN_QDRANT_API_KEY."""
    documented = _documented_qdrant_api_key()
    secrets = cr.chart_values()["secrets"]["existingSecret"]
    assert documented == {"valueFrom": {"secretKeyRef": {"name": secrets, "key": "TWIN_QDRANT_API_KEY"}}}
    h = cr.helm()
    with h.Chart.load(cr.CHART) as chart:
        chart.validate_schema({"qdrant": {"apiKey": documented}})
        chart.validate_schema({"qdrant": {"apiKey": False}})
        for bad in (True, "a-key-in-the-values", {"valueFrom": {"secretKeyRef": {"name": secrets}}}):
            with pytest.raises(h.HelmValuesError) as exc:
                chart.validate_schema({"qdrant": {"apiKey": bad}})
            assert "/qdrant/apiKey" in str(exc.value), bad
    docs = (cr.REPO / "docs" / "deploy.md").read_text()
    assert "secretKeyRef: {name: llm-twin-secrets, key: TWIN_QDRANT_API_KEY}" in docs
