"""The chart grants the operator exactly the permissions it uses: no more, no less, nothing by
wildcard, leases only in the release namespace.

The permissions the operator uses come from `$KEELSON_BIN rbac` (CI builds the binary and sets
KEELSON_BIN). Without KEELSON_BIN the tests fall back to expected_rbac.json, and say so."""

from __future__ import annotations

import copy
import json
import os
import subprocess
import warnings
from functools import lru_cache
from pathlib import Path
from typing import Any, Iterable

import pytest

from conftest import NAMESPACE, RELEASE, TESTS, render

CLUSTER = "<cluster>"
# Granted only where the Lease lives: the release namespace.
LEASE_RESOURCES = {("coordination.k8s.io", "leases")}
RBAC_KINDS = {"ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding"}

Grant = tuple[str, str, str, str]  # (scope, apiGroup, resource, verb)


def expand(rules: Iterable[dict[str, Any]]) -> set[tuple[str, str, str]]:
    """Rules as (apiGroup, resource, verb) triples."""
    triples = set()
    for rule in rules:
        for group in rule.get("apiGroups", []):
            for resource in rule.get("resources", []):
                for verb in rule.get("verbs", []):
                    triples.add((group, resource, verb))
    return triples


@lru_cache(maxsize=1)
def operator_rules() -> tuple[tuple[str, str, str], ...]:
    binary = os.environ.get("KEELSON_BIN")
    if binary:
        if not Path(binary).is_file() or not os.access(binary, os.X_OK):
            pytest.fail(f"KEELSON_BIN={binary} is not an executable file: build it with `cargo build -p keelson`")
        result = subprocess.run([binary, "rbac"], capture_output=True, text=True, timeout=60)
        if result.returncode != 0:
            pytest.fail(f"`{binary} rbac` exited {result.returncode}: {result.stderr.strip()}")
        try:
            rules = json.loads(result.stdout)
        except json.JSONDecodeError as err:
            pytest.fail(f"`{binary} rbac` did not print JSON ({err}): {result.stdout[:500]!r}")
        source = f"`{binary} rbac`"
    else:
        rules = json.loads((TESTS / "expected_rbac.json").read_text())
        source = "charts/tests/expected_rbac.json"
        message = ("KEELSON_BIN is unset: checking the chart's RBAC against charts/tests/expected_rbac.json, "
                   "not against `keelson rbac`. Set KEELSON_BIN to a built keelson binary to check the real thing.")
        print(message)
        warnings.warn(message, stacklevel=1)
    triples = expand(rules)
    assert triples, f"{source} lists no permissions"
    return tuple(sorted(triples))


def expected_grants(watch_namespaces: list[str], leader_election: bool = True) -> set[Grant]:
    scopes = watch_namespaces or [CLUSTER]
    grants: set[Grant] = set()
    for group, resource, verb in operator_rules():
        if (group, resource) in LEASE_RESOURCES:
            if leader_election:
                grants.add((NAMESPACE, group, resource, verb))
        else:
            grants.update((scope, group, resource, verb) for scope in scopes)
    return grants


def effective_grants(objects: list[dict[str, Any]], account: str = RELEASE) -> set[Grant]:
    """What the operator's ServiceAccount may do, from the rendered roles and bindings."""
    roles = {}
    for obj in objects:
        if obj["kind"] in {"ClusterRole", "Role"}:
            roles[(obj["kind"], obj["metadata"].get("namespace"), obj["metadata"]["name"])] = obj
    grants: set[Grant] = set()
    for binding in objects:
        if binding["kind"] not in {"ClusterRoleBinding", "RoleBinding"}:
            continue
        subject = {"kind": "ServiceAccount", "name": account, "namespace": NAMESPACE}
        assert binding["subjects"] == [subject], f"{binding['kind']}/{binding['metadata']['name']} binds {binding['subjects']}"
        ref = binding["roleRef"]
        namespace = binding["metadata"].get("namespace")
        key = (ref["kind"], None if ref["kind"] == "ClusterRole" else namespace, ref["name"])
        assert key in roles, f"{binding['kind']}/{binding['metadata']['name']} refers to missing {key}"
        scope = CLUSTER if binding["kind"] == "ClusterRoleBinding" else namespace
        grants.update((scope, *triple) for triple in expand(roles[key]["rules"]))
    return grants


def differences(objects: list[dict[str, Any]], expected: set[Grant]) -> list[str]:
    actual = effective_grants(objects)
    extra = sorted(actual - expected)
    missing = sorted(expected - actual)
    return [f"granted but not used: {g}" for g in extra] + [f"used but not granted: {g}" for g in missing]


CASES = {
    "cluster": ({}, [], True),
    "namespaced": ({"watchNamespaces": ["team-a", "team-b"]}, ["team-a", "team-b"], True),
    "namespaced-including-release-namespace": (
        {"watchNamespaces": [NAMESPACE, "team-a"]}, [NAMESPACE, "team-a"], True),
    "single-replica-without-leader-election": (
        {"replicas": 1, "leaderElection": {"enabled": False}}, [], False),
}


@pytest.mark.parametrize("case", CASES)
def test_chart_grants_exactly_what_the_operator_uses(case):
    values, namespaces, leader_election = CASES[case]
    problems = differences(render(values), expected_grants(namespaces, leader_election))
    assert problems == [], "\n".join(problems)


@pytest.mark.parametrize("case", CASES)
def test_no_wildcards_or_non_resource_urls(case):
    for obj in render(CASES[case][0]):
        if obj["kind"] not in {"ClusterRole", "Role"}:
            continue
        assert "aggregationRule" not in obj
        for rule in obj["rules"]:
            assert "nonResourceURLs" not in rule, rule
            for field in ("apiGroups", "resources", "verbs", "resourceNames"):
                for item in rule.get(field, []):
                    assert "*" not in item, f"{obj['kind']}/{obj['metadata']['name']}: wildcard in {field}: {rule}"


def test_namespaced_mode_grants_nothing_cluster_wide():
    objects = render({"watchNamespaces": ["team-a", "team-b"]})
    assert not [o for o in objects if o["kind"] in {"ClusterRole", "ClusterRoleBinding"}]
    assert {o["metadata"]["namespace"] for o in objects if o["kind"] == "Role"} == {"team-a", "team-b", NAMESPACE}


def test_lease_access_is_limited_to_the_lease():
    [role] = [o for o in render() if o["kind"] == "Role"]
    assert role["metadata"]["namespace"] == NAMESPACE
    for rule in role["rules"]:
        if set(rule["verbs"]) - {"create"}:
            assert rule.get("resourceNames") == ["keelson-leader"], rule


def test_rbac_can_be_left_to_the_cluster_admin():
    assert not [o for o in render({"rbac": {"create": False}}) if o["kind"] in RBAC_KINDS]


def _first(objects: list[dict[str, Any]], kind: str) -> dict[str, Any]:
    return next(o for o in objects if o["kind"] == kind)


def test_comparison_catches_extra_missing_and_misplaced_grants():
    # Proves the check above can fail, per group/resource/verb and per scope.
    objects = render()
    expected = expected_grants([])
    assert differences(objects, expected) == []

    extra_verb = copy.deepcopy(objects)
    _first(extra_verb, "ClusterRole")["rules"][0]["verbs"].append("delete")
    assert differences(extra_verb, expected) == ["granted but not used: ('<cluster>', 'keelson.dev', 'applications', 'delete')"]

    missing_verb = copy.deepcopy(objects)
    rule = next(r for r in _first(missing_verb, "ClusterRole")["rules"] if "events" in r["resources"])
    rule["verbs"].remove("patch")
    assert differences(missing_verb, expected) == ["used but not granted: ('<cluster>', 'events.k8s.io', 'events', 'patch')"]

    extra_resource = copy.deepcopy(objects)
    _first(extra_resource, "ClusterRole")["rules"].append(
        {"apiGroups": [""], "resources": ["configmaps"], "verbs": ["get"]})
    assert differences(extra_resource, expected) == ["granted but not used: ('<cluster>', '', 'configmaps', 'get')"]

    leases_cluster_wide = copy.deepcopy(objects)
    _first(leases_cluster_wide, "ClusterRole")["rules"].append(
        {"apiGroups": ["coordination.k8s.io"], "resources": ["leases"], "verbs": ["get"]})
    assert differences(leases_cluster_wide, expected) == [
        "granted but not used: ('<cluster>', 'coordination.k8s.io', 'leases', 'get')"]

    unbound = [o for o in copy.deepcopy(objects) if o["kind"] != "ClusterRoleBinding"]
    assert len(differences(unbound, expected)) == len([g for g in expected if g[0] == CLUSTER])
