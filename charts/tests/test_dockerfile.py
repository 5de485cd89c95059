"""operator/Dockerfile builds the image the chart expects. No container engine runs here, so
this checks the Dockerfile's instructions and the build context instead of building it."""

from __future__ import annotations

import fnmatch
import json
import re

from conftest import REPO

DOCKERFILE = REPO / "operator" / "Dockerfile"


def instructions() -> list[tuple[str, str]]:
    text = DOCKERFILE.read_text()
    text = re.sub(r"\\\n", " ", text)
    result = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            keyword, _, rest = line.partition(" ")
            result.append((keyword.upper(), rest.strip()))
    return result


def final_stage() -> list[tuple[str, str]]:
    steps = instructions()
    last_from = max(i for i, (k, _) in enumerate(steps) if k == "FROM")
    return steps[last_from:]


def test_final_stage_is_distroless_nonroot_with_the_binary_as_entrypoint():
    stage = final_stage()
    base = stage[0][1]
    assert base.startswith("gcr.io/distroless/") and base.split()[0].endswith(":nonroot"), base
    assert ("USER", "65532:65532") in stage
    [entrypoint] = [json.loads(v) for k, v in stage if k == "ENTRYPOINT"]
    assert entrypoint == ["/keelson"]
    assert any(k == "COPY" and v.endswith(" /keelson") for k, v in stage)
    # Nothing in the final stage runs a shell: distroless has none.
    assert not [v for k, v in stage if k == "RUN"]


def test_builder_builds_keelson_locked_from_the_repo_root():
    steps = instructions()
    builds = [v for k, v in steps if k == "RUN" and "cargo build" in v]
    assert len(builds) == 1
    assert "--locked" in builds[0] and "--release" in builds[0] and "-p keelson" in builds[0]
    assert "musl" in builds[0]
    copied = {v.split()[0] for k, v in steps if k == "COPY" and not v.startswith("--from")}
    assert {"Cargo.toml", "operator", "e2e"} <= copied
    # Every workspace member is in the build.
    cargo = (REPO / "Cargo.toml").read_text()
    members = re.search(r"members\s*=\s*\[([^\]]*)\]", cargo).group(1)
    for member in re.findall(r'"([^"]+)"', members):
        assert member in copied, f"workspace member {member} is not copied into the builder"


def ignored(path: str, patterns: list[str]) -> bool:
    """Whether .dockerignore keeps `path` out of the build context (last match wins)."""
    result = False
    parts = path.split("/")
    prefixes = ["/".join(parts[:i]) for i in range(1, len(parts) + 1)]
    for pattern in patterns:
        negate = pattern.startswith("!")
        pattern = pattern.lstrip("!").strip("/")
        regex = fnmatch.translate(pattern.replace("**/", "\0")).replace("\0", "(?:.*/)?")
        if any(re.match(regex, prefix) for prefix in prefixes):
            result = not negate
    return result


def test_dockerignore_keeps_the_workspace_and_drops_build_output():
    patterns = [line.strip() for line in (REPO / ".dockerignore").read_text().splitlines()
                if line.strip() and not line.startswith("#")]
    for needed in ("Cargo.toml", "Cargo.lock", "operator/Cargo.toml", "operator/src/main.rs", "e2e/Cargo.toml"):
        assert not ignored(needed, patterns), f".dockerignore drops {needed}"
    for dropped in ("target/release/keelson", ".git/HEAD", ".venv/bin/python"):
        assert ignored(dropped, patterns), f".dockerignore keeps {dropped}"
