"""Every object `keelson render` prints for the samples is valid Kubernetes: core kinds against
the official schemas of the oldest and newest supported Kubernetes version (strict: unknown
fields are errors), ServiceMonitors and HTTPRoutes against their upstream CRDs.

Run from the repository root after `cargo build -p keelson`:

    .venv/bin/python -m pytest operator/tests/manifests -q

KEELSON_BIN names the binary (default target/debug/keelson), KEELSON_THIRD_PARTY_CRDS the folder
holding the upstream CRDs pinned in e2e/third-party-crds.tsv (relative to the repository root when
relative); without it the tests that need them are skipped, saying how to fetch them.
"""

from __future__ import annotations

import copy
import os
import subprocess
from functools import lru_cache
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import pytest
import yaml

REPO = Path(__file__).resolve().parents[3]
SAMPLES = sorted((REPO / "samples").glob("*.yaml"))

# The Kubernetes versions Keelson supports, oldest and newest, as charts/tests uses them.
K8S_VERSIONS = ("1.32.0", "1.37.0")

CORE_KINDS = {
    ("v1", "Secret"),
    ("v1", "Service"),
    ("apps/v1", "StatefulSet"),
    ("apps/v1", "Deployment"),
    ("autoscaling/v2", "HorizontalPodAutoscaler"),
    ("policy/v1", "PodDisruptionBudget"),
    ("networking.k8s.io/v1", "Ingress"),
}
# Custom resources, validated against their CRD: (group, kind) -> plural.
CUSTOM_KINDS = {
    ("monitoring.coreos.com", "ServiceMonitor"): "servicemonitors",
    ("gateway.networking.k8s.io", "HTTPRoute"): "httproutes",
}


def keelson_bin() -> Path:
    env = os.environ.get("KEELSON_BIN")
    path = Path(env) if env else REPO / "target" / "debug" / "keelson"
    if not path.is_absolute():
        path = REPO / path
    if not path.exists():
        pytest.fail(f"{path} does not exist: run `cargo build -p keelson` or set KEELSON_BIN")
    return path


FETCH_THIRD_PARTY_CRDS = ("e2e/fetch-third-party-crds.sh, then export "
                          "KEELSON_THIRD_PARTY_CRDS=e2e/third-party-crds")


def third_party_crd(file: str) -> dict[str, Any]:
    """One upstream third-party CRD from $KEELSON_THIRD_PARTY_CRDS; skips the calling test when
    the variable is unset, fails when the folder lacks the file."""
    env = os.environ.get("KEELSON_THIRD_PARTY_CRDS")
    if not env:
        pytest.skip(f"needs the upstream CRD {file}: KEELSON_THIRD_PARTY_CRDS is not set; "
                    f"run {FETCH_THIRD_PARTY_CRDS}")
    path = REPO / env / file
    if not path.exists():
        pytest.fail(f"{path} is missing (KEELSON_THIRD_PARTY_CRDS): run {FETCH_THIRD_PARTY_CRDS}")
    return yaml.safe_load(path.read_text())


def run_render(path: Path | str, *flags: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(keelson_bin()), "render", "-f", str(path), *flags],
                          capture_output=True, text=True, check=False, timeout=120)


@lru_cache(maxsize=None)
def render(path: Path, *flags: str) -> tuple[dict[str, Any], ...]:
    done = run_render(path, *flags)
    assert done.returncode == 0, f"keelson render -f {path} failed: {done.stderr}"
    objects = tuple(d for d in yaml.safe_load_all(done.stdout) if d)
    assert objects, f"keelson render -f {path} printed nothing"
    return objects


def _close_objects(schema: Any) -> Any:
    """An OpenAPI v3 structural schema that rejects unknown fields, as the API server's strict
    field validation does."""
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
    served = {v["name"]: v for v in crd["spec"]["versions"] if v.get("served")}
    assert version in served, f"the {plural} CRD does not serve {version}"
    return _close_objects(served[version]["schema"]["openAPIV3Schema"])


def validate(obj: dict[str, Any], k8s_version: str) -> None:
    """Raises kubernetes_validate.ValidationError or jsonschema.ValidationError."""
    api_version, kind = obj["apiVersion"], obj["kind"]
    group, _, version = api_version.rpartition("/")
    plural = CUSTOM_KINDS.get((group, kind))
    if plural:
        jsonschema.Draft7Validator(crd_schema(group, plural, version)).validate(obj)
        return
    assert (api_version, kind) in CORE_KINDS, f"unexpected kind {api_version} {kind}"
    used = kubernetes_validate.validate(obj, k8s_version, strict=True)
    # kubernetes-validate falls back to another schema set when it lacks the asked one.
    assert used == k8s_version.rsplit(".", 1)[0], f"validated against {used}, not {k8s_version}"


def is_custom(obj: dict[str, Any]) -> bool:
    return (obj["apiVersion"].rpartition("/")[0], obj["kind"]) in CUSTOM_KINDS


def describe(obj: dict[str, Any]) -> str:
    return f"{obj['kind']}/{obj['metadata']['name']}"


def test_samples_exist():
    assert len(SAMPLES) >= 4, SAMPLES


@pytest.mark.parametrize("k8s_version", K8S_VERSIONS)
@pytest.mark.parametrize("sample", SAMPLES, ids=lambda p: p.stem)
@pytest.mark.parametrize("flags", [(), ("--no-service-monitors", "--no-http-routes")],
                         ids=["all-apis", "no-optional-apis"])
def test_rendered_objects_are_valid(sample: Path, k8s_version: str, flags: tuple[str, ...]):
    for obj in render(sample, *flags):
        if is_custom(obj):
            continue  # test_rendered_custom_resources_are_valid
        try:
            validate(obj, k8s_version)
        except (jsonschema.ValidationError, kubernetes_validate.ValidationError) as err:
            pytest.fail(f"{sample.name}: {describe(obj)} is invalid for Kubernetes {k8s_version}: "
                        f"{err.message} at {list(err.absolute_path)}")


def test_rendered_custom_resources_are_valid():
    # Against the upstream CRDs' schemas (skipped, saying how to get them, without them).
    custom = [(s, o) for s in SAMPLES for o in render(s) if is_custom(o)]
    assert {o["kind"] for _, o in custom} == {k for _, k in CUSTOM_KINDS}
    for sample, obj in custom:
        try:
            validate(obj, K8S_VERSIONS[-1])
        except jsonschema.ValidationError as err:
            pytest.fail(f"{sample.name}: {describe(obj)} is invalid for its upstream CRD: "
                        f"{err.message} at {list(err.absolute_path)}")


def test_every_kind_is_covered_by_the_samples():
    # The samples between them render every kind Keelson writes, so each is validated above.
    rendered = {(o["apiVersion"], o["kind"]) for s in SAMPLES for o in render(s)}
    custom = {(f"{g}/v1", k) for g, k in CUSTOM_KINDS}
    assert rendered == CORE_KINDS | custom


def test_flags_drop_the_optional_apis():
    shop = REPO / "samples" / "shop.yaml"
    blog = REPO / "samples" / "httproute.yaml"
    assert any(o["kind"] == "ServiceMonitor" for o in render(shop))
    assert not any(o["kind"] == "ServiceMonitor" for o in render(shop, "--no-service-monitors"))
    assert any(o["kind"] == "HTTPRoute" for o in render(blog))
    assert not any(o["kind"] == "HTTPRoute" for o in render(blog, "--no-http-routes"))


def test_render_reads_standard_input():
    sample = REPO / "samples" / "minimal.yaml"
    done = subprocess.run([str(keelson_bin()), "render", "-f", "-"], input=sample.read_text(),
                          capture_output=True, text=True, check=False, timeout=120)
    assert done.returncode == 0, done.stderr
    assert [describe(o) for o in yaml.safe_load_all(done.stdout) if o] == \
        [describe(o) for o in render(sample)]


def test_render_of_an_invalid_application_fails_naming_the_field(tmp_path: Path):
    bad = tmp_path / "bad.yaml"
    bad.write_text((REPO / "samples" / "minimal.yaml").read_text()
                   .replace("port: 8080", "port: 70000"))
    done = run_render(bad)
    assert done.returncode == 1
    assert done.stdout == ""
    assert "spec.services[0].ports[0].port" in done.stderr, done.stderr


def _first(kind: str, sample: str) -> dict[str, Any]:
    objects = render(REPO / "samples" / f"{sample}.yaml")
    return copy.deepcopy(next(o for o in objects if o["kind"] == kind))


@pytest.mark.parametrize("k8s_version", K8S_VERSIONS)
def test_validation_rejects_broken_manifests(k8s_version: str):
    # Proves the validation above can fail: an unknown field, and a wrong type, in a core kind.
    deployment = _first("Deployment", "shop")
    deployment["spec"]["template"]["spec"]["containers"][0]["imagePullPolcy"] = "Always"
    with pytest.raises(kubernetes_validate.ValidationError):
        validate(deployment, k8s_version)
    service = _first("Service", "shop")
    service["spec"]["ports"][0]["port"] = "http"
    with pytest.raises(kubernetes_validate.ValidationError):
        validate(service, k8s_version)
    statefulset = _first("StatefulSet", "mysql")
    statefulset["spec"]["persistentVolumeClaimRetentionPolicy"]["whenDeleted"] = 1
    with pytest.raises(kubernetes_validate.ValidationError):
        validate(statefulset, k8s_version)
    # The unbroken originals pass.
    for sample, kind in [("shop", "Deployment"), ("shop", "Service"), ("mysql", "StatefulSet")]:
        validate(_first(kind, sample), k8s_version)


def test_validation_rejects_broken_custom_resources():
    # The same for the custom resources, against their upstream CRDs.
    monitor = _first("ServiceMonitor", "shop")
    monitor["spec"]["endpoints"][0]["intervall"] = "30s"
    with pytest.raises(jsonschema.ValidationError):
        validate(monitor, K8S_VERSIONS[-1])
    route = _first("HTTPRoute", "httproute")
    route["spec"]["rules"][0]["matches"][0]["path"]["type"] = "Prefix"
    with pytest.raises(jsonschema.ValidationError):
        validate(route, K8S_VERSIONS[-1])
    for sample, kind in [("shop", "ServiceMonitor"), ("httproute", "HTTPRoute")]:
        validate(_first(kind, sample), K8S_VERSIONS[-1])
