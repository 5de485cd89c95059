"""`keelson render` prints YAML that a YAML 1.1 reader (PyYAML, like kubectl's go-yaml v2) reads
back to exactly the strings of the input: no block scalar starting with a tab, every string that
YAML 1.1 would read as a boolean, number, date or null quoted.

Run from the repository root after `cargo build -p keelson`:

    .venv/bin/python -m pytest operator/tests/manifests -q
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import yaml

from test_rendered_manifests import keelson_bin

# The same kinds of strings as ADVERSARIAL_STRINGS in operator/tests/render.rs.
STRINGS = [
    "\n\t", "\n\ta", "\t", "\ta\n", "a\n\tb", " \n", "\n", "\n\n", "a \n b ", "\r\n", "a\rb",
    "on", "On", "ON", "off", "yes", "Yes", "no", "NO", "y", "Y", "n", "N", "true", "False",
    "010", "0o10", "0x1F", "0b101", "1_000", "1e3", "1.", ".5", "+1", "-1", "08", "1:30",
    "190:20:30", "2024-01-01", "2024-01-01 10:00:00", ".inf", "-.Inf", ".nan", "~", "null",
    "NULL", "", " ", " leading", "trailing ", "a: b", "a:b", "- x", "-", "? x", "#x", "a #b",
    "'q'", '"dq"', "\\", "|", ">", "!tag", "&a", "*a", "%x", "@x", "`x", "<<", "=", "[x]",
    "{x: y}", ",", "\u0085", "\u00a0", "\u2028", "é", "😀", "\u001b[0m",
    "a long line with spaces that goes well past eighty characters, so that a writer might want"
    " to fold it here",
    "a long line with spaces that goes well past eighty characters\n  and keeps its indentation \n",
]


def test_render_output_reads_back_with_pyyaml(tmp_path: Path) -> None:
    app = {
        "apiVersion": "keelson.dev/v1alpha1",
        "kind": "Application",
        "metadata": {"name": "odd"},
        "spec": {
            "gateway": {
                "annotations": {f"example.com/a{i}": s for i, s in enumerate(STRINGS)},
                "routes": [{"path": "/", "service": "web"}],
            },
            "services": [{
                "name": "web",
                "image": "web:1",
                "ports": [{"name": "http", "port": 80}],
                "args": STRINGS,
                "env": [{"name": f"V{i}", "value": s} for i, s in enumerate(STRINGS)],
            }],
        },
    }
    source = tmp_path / "odd.yaml"
    source.write_text(json.dumps(app))
    done = subprocess.run([str(keelson_bin()), "render", "-f", str(source)],
                          capture_output=True, text=True, check=False, timeout=120)
    assert done.returncode == 0, done.stderr
    objects = [d for d in yaml.safe_load_all(done.stdout) if d]
    deployment = next(o for o in objects if o["kind"] == "Deployment")
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    assert container["args"] == STRINGS
    values = {e["name"]: e.get("value") for e in container["env"]}
    for i, s in enumerate(STRINGS):
        assert values[f"V{i}"] == s, f"V{i}: {s!r} came back as {values[f'V{i}']!r}"
    ingress = next(o for o in objects if o["kind"] == "Ingress")
    assert ingress["metadata"]["annotations"] == app["spec"]["gateway"]["annotations"]
