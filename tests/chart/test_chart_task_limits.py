"""The task LimitRange caps the task namespace only.

A LimitRange has no selector: in the release namespace (tasks.namespace empty) it gave its defaults to
Airflow, Qdrant and every other container there that declares no resources, and made Kubernetes refuse
one whose request is above the default limit with no limit of its own. It is rendered only for a task
namespace of its own; the task containers carry explicit requests and limits from their profile (the
DAG factory renders them from the execution.yaml checked here; tests/dags/test_dags.py checks the pods).
"""

from __future__ import annotations

import chart_render as cr  # noqa: E402  (tests/chart/conftest.py puts it on sys.path)
import helm_python  # noqa: F401 - a dev dependency: missing is a failure, not a skip
import pytest
import yaml


def _limit_ranges(values: dict | None) -> list[dict]:
    return cr.find(cr.objects(cr.render(values)), "LimitRange")


@pytest.mark.parametrize(
    "values",
    [None, {"tasks": {"namespace": cr.NAMESPACE}}, cr.ci_values("kind")],
    ids=["tasks.namespace empty", "tasks.namespace = release namespace", "kind values"],
)
def test_no_limit_range_in_the_release_namespace(values):
    assert _limit_ranges(values) == []


def test_limit_range_in_a_task_namespace_of_its_own():
    (lr,) = _limit_ranges({"tasks": {"namespace": "llm-twin-tasks"}})
    assert lr["metadata"]["namespace"] == "llm-twin-tasks"
    defaults = cr.chart_values()["tasks"]["limitRange"]
    assert lr["spec"] == {
        "limits": [{"type": "Container", "defaultRequest": defaults["defaultRequest"], "default": defaults["default"]}]
    }
    assert cr.validate_object(lr) == []
    assert _limit_ranges({"tasks": {"namespace": "llm-twin-tasks", "limitRange": {"enabled": False}}}) == []


@pytest.mark.parametrize("variant", [None, "kind", "gpu", "external"])
def test_every_task_profile_sets_requests_and_limits(variant):
    """What the task containers get instead of LimitRange defaults: each profile of the rendered
    execution.yaml (the DAG factory's container_resources) names CPU and memory requests and limits."""
    values = cr.ci_values(variant) if variant else None
    (cm,) = cr.find(cr.objects(cr.render(values)), "ConfigMap", "llm-twin-execution")
    profiles = yaml.safe_load(cm["data"]["execution.yaml"])["profiles"]
    # every profile the DAG factory knows (configs/execution.yaml), none missing in a values variant
    assert set(profiles) == set(yaml.safe_load((cr.REPO / "configs" / "execution.yaml").read_text())["profiles"])
    for name, profile in profiles.items():
        for kind in ("requests", "limits"):
            assert {"cpu", "memory"} <= set(profile[kind]), (name, kind)
