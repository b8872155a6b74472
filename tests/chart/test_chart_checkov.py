"""checkov on the rendered chart and on the Dockerfiles: no failed check, every skip justified inline.

checkov lives in its own environment (.venv-tools, requirements/tools.txt): its pins clash with both
Python stacks. Offline (--skip-download) checkov reports no severities, so the bar here is stricter
than "no HIGH/CRITICAL": no failed check at all. A skip is an annotation `checkov.io/skipN: ID=reason`
on a Kubernetes object, or `# checkov:skip=ID: reason` in a Dockerfile.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import chart_render as cr  # noqa: E402  (tests/chart/conftest.py puts it on sys.path)
import helm_python  # noqa: F401 - a dev dependency: missing is a failure, not a skip
import pytest
import yaml  # noqa: E402

CHECKOV = cr.REPO / ".venv-tools" / "bin" / "checkov"
IMAGES = cr.REPO / "images"
BOTH_APIS = (cr.KSERVE_API, *cr.PROMETHEUS_APIS)


@pytest.fixture(autouse=True)
def _checkov_installed() -> None:
    """`make setup` builds it (make test runs setup first): a missing checkov is a failure, not a skip."""
    assert CHECKOV.exists(), f"{CHECKOV} is missing: build it with `make setup` (requirements/tools.txt)"


def run_checkov(directory: Path, framework: str) -> dict:
    proc = subprocess.run(
        [str(CHECKOV), "-d", str(directory), "--framework", framework, "--skip-download", "-o", "json"],
        capture_output=True,
        text=True,
        timeout=300,
        env={"PATH": "/usr/bin:/bin", "HOME": str(directory), "LOG_LEVEL": "WARNING"},
    )
    assert proc.returncode in (0, 1), proc.stderr[-2000:]
    report = json.loads(proc.stdout)
    reports = report if isinstance(report, list) else [report]
    (result,) = [r for r in reports if r["check_type"] == framework]
    assert result["summary"]["parsing_errors"] == 0, result["summary"]
    return result


def _failures(result: dict) -> list[str]:
    return sorted(
        {
            f"{c['check_id']} {c['check_name']} [{c['resource']}] {c['file_path']}"
            for c in result["results"]["failed_checks"]
        }
    )


def _unjustified_skips(result: dict) -> list[str]:
    return [
        f"{c['check_id']} [{c['resource']}]"
        for c in result["results"]["skipped_checks"]
        if len((c["check_result"].get("suppress_comment") or "").strip()) < 20
    ]


@pytest.fixture(scope="module")
def rendered_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("rendered")
    variants = {
        "defaults": None,
        "kind": cr.ci_values("kind"),
        "gpu": cr.ci_values("gpu"),
        "external": cr.ci_values("external"),
        # one InferenceService per author, Knative, Hugging Face runtime
        "authors": {
            "serving": {
                "deploymentMode": "Knative",
                "authors": [{"slug": "ada-quillfeather"}, {"slug": "oskar-brennmoor"}],
                "predictor": {"runtime": "huggingface"},
            }
        },
    }
    for name, values in variants.items():
        objs = cr.objects(cr.render(values, api_versions=BOTH_APIS))
        (out / f"{name}.yaml").write_text(yaml.safe_dump_all(objs, sort_keys=False))
    return out


def test_rendered_manifests_pass_checkov(rendered_dir):
    result = run_checkov(rendered_dir, "kubernetes")
    assert result["summary"]["resource_count"] > 40
    assert _failures(result) == []
    assert _unjustified_skips(result) == []


def test_dockerfiles_pass_checkov():
    result = run_checkov(IMAGES, "dockerfile")
    assert result["summary"]["resource_count"] == len(list(IMAGES.glob("*/Dockerfile"))) == 4
    assert _failures(result) == []
    assert _unjustified_skips(result) == []


def test_checkov_does_catch_problems(tmp_path):
    """Control: the same invocation flags a root, unpinned Dockerfile, so a green scan means something."""
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "Dockerfile").write_text("FROM python:latest\nUSER root\nRUN apt-get install -y curl\n")
    result = run_checkov(tmp_path, "dockerfile")
    failed = {c["check_id"] for c in result["results"]["failed_checks"]}
    assert {"CKV_DOCKER_7", "CKV_DOCKER_8"} <= failed
