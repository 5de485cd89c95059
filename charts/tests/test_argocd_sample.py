"""samples/argocd/application.yaml syncs samples/ (without itself) the way its README says."""

from __future__ import annotations

import fnmatch

import yaml

from conftest import REPO

SAMPLE = REPO / "samples" / "argocd" / "application.yaml"


def test_argocd_application_syncs_the_samples():
    app = yaml.safe_load(SAMPLE.read_text())
    assert app["apiVersion"] == "argoproj.io/v1alpha1"
    assert app["kind"] == "Application"
    source = app["spec"]["source"]
    assert source["path"] == "samples"
    # Argo CD matches exclude globs against paths relative to source.path.
    exclude = source["directory"]["exclude"]
    for own in ("argocd/application.yaml", "argocd/argocd-cm-health.yaml"):
        assert fnmatch.fnmatch(own, exclude), f"{exclude} does not exclude {own}"
    assert not fnmatch.fnmatch("web.yaml", exclude)
    sync = app["spec"]["syncPolicy"]
    assert sync["automated"]["prune"] is True and sync["automated"]["selfHeal"] is True
    assert "ServerSideApply=true" in sync["syncOptions"]
    assert app["spec"]["destination"]["namespace"]


def test_readme_warns_about_tracking_metadata():
    readme = (REPO / "samples" / "argocd" / "README.md").read_text()
    assert "app.kubernetes.io/instance" in readme
    assert "argocd.argoproj.io/" in readme
    assert "ownerReference" in readme
