"""values.schema.json accepts the defaults and rejects bad values before anything renders."""

from __future__ import annotations

import json

import helm_python as helm
import pytest
import yaml

from conftest import CHART, MODES


def validate(values):
    with helm.Chart.load(CHART) as chart:
        chart.validate_schema(values)


@pytest.mark.parametrize("mode", MODES)
def test_schema_accepts_the_supported_modes(mode):
    validate(MODES[mode])


def test_defaults_satisfy_the_schema():
    validate(yaml.safe_load((CHART / "values.yaml").read_text()))


@pytest.mark.parametrize("values, complaint", [
    ({"replicas": "two"}, "/replicas"),
    ({"replicas": -1}, "/replicas"),
    ({"replica": 2}, "replica"),
    ({"log": {"format": "xml"}}, "/log/format"),
    ({"log": {"level": "loud"}}, "/log/level"),
    ({"crds": {"install": "yes"}}, "/crds/install"),
    ({"crds": {"keep": 1}}, "/crds/keep"),
    ({"watchNamespaces": ["Team_A"]}, "/watchNamespaces/0"),
    ({"watchNamespaces": "team-a"}, "/watchNamespaces"),
    ({"image": {"pullPolicy": "Sometimes"}}, "/image/pullPolicy"),
    ({"image": {"digest": "latest"}}, "/image/digest"),
    ({"podAntiAffinity": "maybe"}, "/podAntiAffinity"),
    ({"serviceMonitor": {"interval": "often"}}, "/serviceMonitor/interval"),
    ({"serviceMonitor": {"enable": True}}, "enable"),
    ({"metrics": {"service": {"port": 70000}}}, "/metrics/service/port"),
    ({"podDisruptionBudget": {"maxUnavailable": "half"}}, "/podDisruptionBudget/maxUnavailable"),
])
def test_schema_rejects_bad_values(values, complaint):
    with pytest.raises(helm.HelmValuesError, match=complaint):
        validate(values)


def test_schema_is_closed_at_the_top_and_describes_every_key():
    schema = json.loads((CHART / "values.schema.json").read_text())
    assert schema["additionalProperties"] is False
    defaults = yaml.safe_load((CHART / "values.yaml").read_text())
    assert set(defaults) <= set(schema["properties"])
    for key, prop in schema["properties"].items():
        assert prop.get("description"), f"{key} has no description"
