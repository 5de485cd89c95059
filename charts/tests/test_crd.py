"""The generated CRD template (templates/crd.yaml, written by `keelson crd --chart`) follows
crds.install and crds.keep."""

from __future__ import annotations

import pytest

from conftest import CHART, of_kind, render

CRD_TEMPLATE = CHART / "templates" / "crd.yaml"

pytestmark = pytest.mark.skipif(
    not CRD_TEMPLATE.exists(),
    reason="charts/keelson/templates/crd.yaml is not generated yet: run `keelson crd --chart`")


def application_crd(values):
    crds = of_kind(render(values), "CustomResourceDefinition")
    return [c for c in crds if c["metadata"]["name"] == "applications.keelson.dev"]


def test_crd_is_installed_and_kept_by_default():
    [crd] = application_crd({})
    assert crd["metadata"]["annotations"]["helm.sh/resource-policy"] == "keep"
    spec = crd["spec"]
    assert spec["group"] == "keelson.dev"
    assert spec["scope"] == "Namespaced"
    assert spec["names"]["kind"] == "Application"
    assert spec["names"]["plural"] == "applications"
    assert "kapp" in spec["names"]["shortNames"]
    versions = {v["name"]: v for v in spec["versions"]}
    assert versions["v1alpha1"]["served"] is True
    assert versions["v1alpha1"]["storage"] is True
    assert versions["v1alpha1"]["subresources"]["status"] == {}


def test_crd_is_not_kept_when_keep_is_false():
    [crd] = application_crd({"crds": {"keep": False}})
    assert "helm.sh/resource-policy" not in (crd["metadata"].get("annotations") or {})


def test_crd_is_absent_when_install_is_false():
    assert application_crd({"crds": {"install": False}}) == []
    assert application_crd({"crds": {"install": False, "keep": True}}) == []
