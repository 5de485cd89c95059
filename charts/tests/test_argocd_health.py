"""The Argo CD health check, run by the real Lua 5.1 interpreter the way Argo CD runs it."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from conftest import CHART, REPO, TESTS

SCRIPT = CHART / "files" / "argocd-health.lua"
HERE = TESTS / "argocd_health"
CASES = yaml.safe_load((HERE / "cases.yaml").read_text())["cases"]
ARGOCD_KEY = "resource.customizations.health.keelson.dev_Application"


def lua_literal(value: Any) -> str:
    """A Lua 5.1 expression for a JSON-like value, as Argo CD hands objects to Lua."""
    if value is None:
        return "nil"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, str):
        escaped = "".join(
            chr(b) if 32 <= b < 127 and chr(b) not in '"\\' else f"\\{b:03d}"
            for b in value.encode("utf-8"))
        return f'"{escaped}"'
    if isinstance(value, list):
        return "{" + ", ".join(lua_literal(v) for v in value) + "}"
    if isinstance(value, dict):
        return "{" + ", ".join(f"[{lua_literal(str(k))}] = {lua_literal(v)}" for k, v in value.items()) + "}"
    raise TypeError(f"no Lua form for {type(value)}")


def run_health(lua: str, obj: dict[str, Any], tmp_path: Path, script: Path = SCRIPT) -> dict[str, str]:
    fixture = tmp_path / "object.lua"
    fixture.write_text("return " + lua_literal(obj) + "\n")
    result = subprocess.run([lua, str(HERE / "harness.lua"), str(fixture), str(script)],
                            capture_output=True, text=True, timeout=30)
    assert result.returncode == 0, f"lua5.1 failed: {result.stderr}"
    return dict(line.split("=", 1) for line in result.stdout.splitlines())


@pytest.mark.parametrize("case", CASES, ids=[Path(c["input"]).stem for c in CASES])
def test_health(lua, case, tmp_path):
    obj = yaml.safe_load((HERE / case["input"]).read_text())
    assert run_health(lua, obj, tmp_path) == {"status": case["status"], "message": case["message"]}


def test_every_outcome_is_covered():
    assert {c["status"] for c in CASES} == {"Healthy", "Progressing", "Degraded"}


def test_harness_catches_a_broken_script(lua, tmp_path):
    # Proves the harness fails on a script that does not load under Lua 5.1.
    broken = tmp_path / "broken.lua"
    broken.write_text("local n = 7 // 2\nreturn { status = 'Healthy' }\n")
    with pytest.raises(AssertionError, match="lua5.1 failed"):
        run_health(lua, {"metadata": {"generation": 1}}, tmp_path, broken)


def test_lua_literals_round_trip_odd_strings(lua, tmp_path):
    message = 'quote " backslash \\ newline \n unicode é'
    obj = {"metadata": {"generation": 1}, "status": {"observedGeneration": 1, "conditions": [
        {"type": "Degraded", "status": "True", "message": message}]}}
    result = subprocess.run(
        [lua, "-e", f"obj = {lua_literal(obj)} io.write(obj.status.conditions[1].message)"],
        capture_output=True, timeout=30)
    assert result.stdout.decode("utf-8") == message


def _argocd_cm_value(text: str) -> str:
    """The health script from an argocd-cm ConfigMap (or a patch of one)."""
    docs = [d for d in yaml.safe_load_all(text) if d]
    [config_map] = [d for d in docs if d.get("kind") == "ConfigMap"]
    assert config_map["metadata"]["name"] == "argocd-cm"
    return config_map["data"][ARGOCD_KEY]


def test_shipped_argocd_cm_patch_embeds_the_script():
    patch = REPO / "samples" / "argocd" / "argocd-cm-health.yaml"
    assert _argocd_cm_value(patch.read_text()) == SCRIPT.read_text()


def test_chart_readme_embeds_the_script():
    readme = (CHART / "README.md").read_text()
    start = readme.index("```yaml\napiVersion: v1\nkind: ConfigMap")
    block = readme[start + len("```yaml\n"):readme.index("```", start + 3)]
    assert _argocd_cm_value(block) == SCRIPT.read_text()
