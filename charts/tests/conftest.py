"""Shared helpers for the chart tests: render the chart with Helm's own engine and look up
objects in the result."""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any, Iterable

import helm_python as helm
import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
CHART = REPO / "charts" / "keelson"
TESTS = Path(__file__).resolve().parent

RELEASE = "keelson"
NAMESPACE = "keelson-system"

# The Kubernetes versions the chart supports, oldest and newest. The oldest is set by
# StatefulSet persistentVolumeClaimRetentionPolicy (GA in 1.32); the newest is the newest
# schema set kubernetes-validate ships. README.md and Chart.yaml's kubeVersion say the same.
K8S_OLDEST = "1.32.0"
K8S_NEWEST = "1.37.0"
K8S_VERSIONS = (K8S_OLDEST, K8S_NEWEST)

# Value sets every rendering test runs over.
MODES: dict[str, dict[str, Any]] = {
    "defaults": {},
    "namespaced": {"watchNamespaces": ["team-a", "team-b"]},
    "no-crds-with-servicemonitor": {"crds": {"install": False}, "serviceMonitor": {"enabled": True}},
}


FETCH_THIRD_PARTY_CRDS = ("e2e/fetch-third-party-crds.sh, then export "
                          "KEELSON_THIRD_PARTY_CRDS=e2e/third-party-crds")


def third_party_crd(file: str) -> dict[str, Any]:
    """One upstream third-party CRD (pinned in e2e/third-party-crds.tsv) from the folder
    $KEELSON_THIRD_PARTY_CRDS (relative to the repository root when relative). Skips the
    calling test, saying how to get them, when the variable is unset; fails when it names a
    folder without the file."""
    env = os.environ.get("KEELSON_THIRD_PARTY_CRDS")
    if not env:
        pytest.skip(f"needs the upstream CRD {file}: KEELSON_THIRD_PARTY_CRDS is not set; "
                    f"run {FETCH_THIRD_PARTY_CRDS}")
    path = REPO / env / file
    if not path.exists():
        pytest.fail(f"{path} is missing (KEELSON_THIRD_PARTY_CRDS): run {FETCH_THIRD_PARTY_CRDS}")
    return yaml.safe_load(path.read_text())


def render(values: dict[str, Any] | None = None, *, name: str = RELEASE,
           namespace: str = NAMESPACE) -> list[dict[str, Any]]:
    """Renders the chart like `helm template` and returns every object, each with the
    template it came from under the key `__source__`."""
    with helm.Chart.load(CHART) as chart:
        manifests = chart.render(values or {}, name=name, namespace=namespace)
    objects = []
    for source, text in sorted(manifests.items()):
        if source.endswith("NOTES.txt"):
            continue
        for doc in yaml.safe_load_all(text):
            if doc:
                doc["__source__"] = source
                objects.append(doc)
    return objects


def render_notes(values: dict[str, Any] | None = None) -> str:
    with helm.Chart.load(CHART) as chart:
        manifests = chart.render(values or {}, name=RELEASE, namespace=NAMESPACE)
    return next(text for source, text in manifests.items() if source.endswith("NOTES.txt"))


def strip(obj: dict[str, Any]) -> dict[str, Any]:
    """The object without the test's own bookkeeping key."""
    return {k: v for k, v in obj.items() if k != "__source__"}


def of_kind(objects: Iterable[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [o for o in objects if o.get("kind") == kind]


def one(objects: Iterable[dict[str, Any]], kind: str) -> dict[str, Any]:
    found = of_kind(objects, kind)
    assert len(found) == 1, f"expected exactly one {kind}, found {len(found)}"
    return found[0]


def deployment_pod(objects: Iterable[dict[str, Any]]) -> dict[str, Any]:
    return one(objects, "Deployment")["spec"]["template"]


def container(objects: Iterable[dict[str, Any]]) -> dict[str, Any]:
    containers = deployment_pod(objects)["spec"]["containers"]
    assert [c["name"] for c in containers] == ["keelson"]
    return containers[0]


def env_of(objects: Iterable[dict[str, Any]]) -> dict[str, Any]:
    """The container's env as name -> value (or the valueFrom mapping)."""
    return {e["name"]: e.get("value", e.get("valueFrom")) for e in container(objects)["env"]}


@pytest.fixture(scope="session")
def lua() -> str:
    """The Lua 5.1 interpreter Argo CD's health checks are written for."""
    path = shutil.which("lua5.1")
    if path is None:
        pytest.fail("lua5.1 is not installed: run `apt-get install -y lua5.1` (Argo CD runs Lua 5.1)")
    return path
