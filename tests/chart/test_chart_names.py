"""Names the chart derives from the release name stay within what Kubernetes takes, or the install stops
with a message before it creates anything.

Helm accepts release names of 53 characters. A Service's and a Job's name is a DNS label (63); a
StatefulSet's is 52 at most, since its pods carry the label controller-revision-hash=<name>-<10-character
hash> and a label value has 63.
"""

from __future__ import annotations

import chart_render as cr  # noqa: E402
import helm_python  # noqa: F401 - a dev dependency: missing is a failure, not a skip
import kubernetes_validate  # noqa: F401 - a dev dependency: missing is a failure, not a skip
import pytest

ALL_APIS = (cr.KSERVE_API, *cr.PROMETHEUS_APIS)
NO_DEV_STORE = {"artifacts": {"uri": "s3://acme-llm-twin/artifacts", "devObjectStore": {"enabled": False}}}
# the kinds whose name is also a DNS label or a label value (the rest take 253-character subdomains)
LABEL_NAMED = {"Service": 63, "Job": 63, "StatefulSet": 52, "Deployment": 63, "InferenceService": 63}


def _message(release: str, fits: int, kind: str, suffix: str, limit: int) -> str:
    name = f"{release}-{suffix}"
    extra = " (its pods' controller-revision-hash label adds 11)" if kind == "StatefulSet" else ""
    return (
        f'release name "{release}" has {len(release)} characters: this chart takes at most {fits}, because '
        f'the {kind} "{name}" would have {len(name)} characters and Kubernetes allows {limit}{extra}. '
        "Choose a shorter release name (docs/deploy.md uses llm-twin)"
    )


def _names_fit(objs: list[dict]) -> None:
    assert objs and [e for o in objs for e in cr.validate_object(o)] == []
    for o in objs:
        limit = LABEL_NAMED.get(o["kind"], 253)
        assert len(o["metadata"]["name"]) <= limit, (o["kind"], o["metadata"]["name"])


@pytest.mark.parametrize(
    "values, fits, kind, suffix, limit",
    [
        (None, 39, "StatefulSet", "object-store", 52),  # the defaults: the dev object store
        (NO_DEV_STORE, 44, "StatefulSet", "mongodb", 52),  # the embedded MongoDB only
    ],
    ids=["dev-object-store", "embedded-mongodb"],
)
def test_release_name_too_long_for_a_store_fails_and_the_longest_that_fits_renders(values, fits, kind, suffix, limit):
    """With a 53-character release name the chart rendered a StatefulSet of 66 characters (its pods never
    start) and a Job and a Service over 63 (refused mid-install). Now one clear message names the tightest
    object and the longest release name that fits; that one renders every name within its limit."""
    h = cr.helm()
    for length in (53, fits + 1):
        release = "llm-twin-" + "x" * (length - 9)
        with pytest.raises(h.HelmError) as exc:
            cr.render(values, api_versions=ALL_APIS, release=release)
        assert _message(release, fits, kind, suffix, limit) in str(exc.value)
    release = "llm-twin-" + "x" * (fits - 9)
    objs = cr.objects(cr.render(values, api_versions=ALL_APIS, release=release))
    _names_fit(objs)
    assert any(len(o["metadata"]["name"]) == limit for o in cr.find(objs, kind))


def test_without_in_chart_stores_any_release_name_helm_takes_renders():
    values = {**NO_DEV_STORE, "mongodb": {"mode": "external", "external": {"uri": "mongodb://db.example:27017"}}}
    _names_fit(cr.objects(cr.render(values, api_versions=ALL_APIS, release="llm-twin-" + "x" * 44)))
