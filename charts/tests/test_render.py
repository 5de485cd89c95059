"""The chart lints cleanly, renders in every mode, and every object it renders is valid for the
oldest and the newest supported Kubernetes version."""

from __future__ import annotations

import copy
from functools import lru_cache
from typing import Any

import helm_python as helm
import jsonschema
import kubernetes_validate
import kubernetes_validate.utils
import pytest
import yaml

from conftest import (CHART, K8S_NEWEST, K8S_OLDEST, K8S_VERSIONS, MODES, render, strip,
                      third_party_crd)

LINT_ERROR = 3


@pytest.mark.parametrize("mode", MODES)
def test_helm_lint_is_clean(mode):
    report = helm.lint(CHART, MODES[mode], strict=True, namespace="keelson-system")
    problems = [m for m in report["messages"] if m["severity"] >= 2]
    assert report["errors"] == [] and problems == [], report


def test_lint_fails_on_bad_values():
    # Proves the lint check above can fail.
    report = helm.lint(CHART, {"replicas": "two"})
    assert report["errors"], report


def test_supported_versions_are_shipped_by_kubernetes_validate():
    shipped = kubernetes_validate.utils.all_versions()
    assert K8S_OLDEST in shipped and K8S_NEWEST in shipped, shipped
    # The newest version named in README.md and the tests is the newest schema available.
    assert K8S_NEWEST == shipped[-1], f"kubernetes-validate now ships {shipped[-1]}: move K8S_NEWEST"


def test_readme_and_chart_name_the_supported_versions():
    readme = (CHART / "README.md").read_text()
    for version in K8S_VERSIONS:
        assert version.rsplit(".", 1)[0] in readme
    chart = yaml.safe_load((CHART / "Chart.yaml").read_text())
    assert chart["kubeVersion"] == f">={K8S_OLDEST}-0"


def _close_objects(schema: Any) -> Any:
    """Makes an OpenAPI v3 structural schema reject unknown fields, as the API server's
    strict field validation does."""
    if isinstance(schema, dict):
        schema = {k: _close_objects(v) for k, v in schema.items()}
        if (schema.get("type") == "object" and "properties" in schema
                and "additionalProperties" not in schema
                and not schema.get("x-kubernetes-preserve-unknown-fields")):
            schema["additionalProperties"] = False
        return schema
    if isinstance(schema, list):
        return [_close_objects(v) for v in schema]
    return schema


@lru_cache(maxsize=None)
def crd_schema(group: str, plural: str, version: str) -> dict[str, Any]:
    crd = third_party_crd(f"{group}_{plural}.yaml")
    served = {v["name"]: v for v in crd["spec"]["versions"]}
    assert version in served, f"the {plural} CRD does not serve {version}"
    return _close_objects(served[version]["schema"]["openAPIV3Schema"])


# Custom resources the chart may render, validated against their CRD's schema instead.
CUSTOM_RESOURCES = {("monitoring.coreos.com", "ServiceMonitor"): "servicemonitors"}


def is_custom(obj: dict[str, Any]) -> bool:
    return (obj["apiVersion"].rpartition("/")[0], obj["kind"]) in CUSTOM_RESOURCES


def validate(obj: dict[str, Any], k8s_version: str) -> None:
    group, _, version = obj["apiVersion"].rpartition("/")
    plural = CUSTOM_RESOURCES.get((group, obj["kind"]))
    if plural:
        jsonschema.Draft7Validator(crd_schema(group, plural, version)).validate(obj)
    else:
        used = kubernetes_validate.validate(obj, k8s_version, strict=True)
        # kubernetes-validate falls back to an older schema set when it lacks the asked one.
        assert used == k8s_version.rsplit(".", 1)[0], f"validated against {used}, not {k8s_version}"


@pytest.mark.parametrize("k8s_version", K8S_VERSIONS)
@pytest.mark.parametrize("mode", MODES)
def test_rendered_objects_are_valid(mode, k8s_version):
    objects = render(MODES[mode])
    assert objects
    for obj in objects:
        if is_custom(obj):
            continue  # test_rendered_custom_resources_are_valid
        try:
            validate(strip(obj), k8s_version)
        except (jsonschema.ValidationError, kubernetes_validate.ValidationError) as err:
            pytest.fail(f"{obj['__source__']}: {obj['kind']}/{obj['metadata']['name']} is invalid "
                        f"for Kubernetes {k8s_version}: {err.message} at {list(err.absolute_path)}")


@pytest.mark.parametrize("mode", [m for m, v in MODES.items()
                                  if v.get("serviceMonitor", {}).get("enabled")])
def test_rendered_custom_resources_are_valid(mode):
    # Against the upstream CRD's schema (skipped, saying how to get them, without them).
    custom = [o for o in render(MODES[mode]) if is_custom(o)]
    assert custom, "the ServiceMonitor is rendered"
    for obj in custom:
        try:
            validate(strip(obj), K8S_NEWEST)
        except jsonschema.ValidationError as err:
            pytest.fail(f"{obj['__source__']}: {obj['kind']}/{obj['metadata']['name']} is invalid "
                        f"for its upstream CRD: {err.message} at {list(err.absolute_path)}")


def test_validation_rejects_a_bad_object():
    # Proves the validation above can fail, for core objects.
    objects = render(MODES["no-crds-with-servicemonitor"])
    deployment = copy.deepcopy(strip(next(o for o in objects if o["kind"] == "Deployment")))
    deployment["spec"]["template"]["spec"]["containers"][0]["imagePullPolcy"] = "Always"
    with pytest.raises(kubernetes_validate.ValidationError):
        validate(deployment, K8S_OLDEST)


def test_validation_rejects_a_bad_custom_resource():
    # And for the ServiceMonitor, against its upstream CRD.
    objects = render(MODES["no-crds-with-servicemonitor"])
    monitor = copy.deepcopy(strip(next(o for o in objects if o["kind"] == "ServiceMonitor")))
    monitor["spec"]["endpoints"][0]["intervall"] = "30s"
    with pytest.raises(jsonschema.ValidationError):
        validate(monitor, K8S_OLDEST)


@pytest.mark.parametrize("mode", MODES)
def test_namespaced_objects_carry_the_release_namespace(mode):
    cluster_scoped = {"ClusterRole", "ClusterRoleBinding", "CustomResourceDefinition"}
    watched = set(MODES[mode].get("watchNamespaces", []))
    for obj in render(MODES[mode]):
        namespace = obj["metadata"].get("namespace")
        if obj["kind"] in cluster_scoped:
            assert namespace is None, obj["metadata"]
        elif obj["kind"] in {"Role", "RoleBinding"} and namespace in watched:
            continue
        else:
            assert namespace == "keelson-system", f"{obj['kind']}/{obj['metadata']['name']}"


@pytest.mark.parametrize("mode", MODES)
def test_names_are_unique(mode):
    seen = set()
    for obj in render(MODES[mode]):
        key = (obj["kind"], obj["metadata"].get("namespace"), obj["metadata"]["name"])
        assert key not in seen, f"rendered twice: {key}"
        seen.add(key)
