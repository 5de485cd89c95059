"""The chart's README documents every value, and only values that exist."""

from __future__ import annotations

import re
from typing import Any, Iterator

import yaml

from conftest import CHART


def leaf_paths(values: dict[str, Any], prefix: str = "") -> Iterator[str]:
    for key, value in values.items():
        path = f"{prefix}{key}"
        if isinstance(value, dict) and value:
            yield from leaf_paths(value, path + ".")
        else:
            yield path


def documented_paths() -> set[str]:
    readme = (CHART / "README.md").read_text()
    table = readme[readme.index("## Values"):]
    return set(re.findall(r"^\| `([A-Za-z0-9.]+)` \|", table, flags=re.MULTILINE))


def test_every_value_is_documented():
    documented = documented_paths()
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    for path in leaf_paths(values):
        parts = path.split(".")
        ancestors = {".".join(parts[:i]) for i in range(1, len(parts) + 1)}
        assert ancestors & documented, f"values.yaml key {path} is missing from README.md's Values table"


def test_every_documented_value_exists():
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    for path in documented_paths():
        node: Any = values
        for part in path.split("."):
            assert isinstance(node, dict) and part in node, f"README.md documents {path}, which values.yaml lacks"
            node = node[part]
