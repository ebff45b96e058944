"""The environment the tests run in is uv.lock, exactly: every locked package this platform needs, at its locked
version, and nothing else (the same set `make install`, CI and Pulumi's uv toolchain install)."""

from __future__ import annotations

import sysconfig
import tomllib
from collections.abc import Iterable, Mapping
from importlib import metadata
from typing import Any

import pytest
from conftest import REPO
from packaging.markers import Marker
from packaging.utils import canonicalize_name

Lock = list[dict[str, Any]]
PYPROJECT = tomllib.loads((REPO / "pyproject.toml").read_text())
DEFAULT_GROUPS = tuple(PYPROJECT.get("tool", {}).get("uv", {}).get("default-groups", ["dev"]))
"""The dependency groups `uv sync` installs: `[tool.uv] default-groups`, which is `dev` when unset."""


def required(
    lock: Lock, root: str, groups: Iterable[str] = DEFAULT_GROUPS, env: Mapping[str, str] | None = None
) -> dict[str, str]:
    """name -> version of every package `uv sync` installs for `root` here: its dependencies and those of the default
    groups, followed through extras, with each edge's environment marker evaluated for this interpreter and platform
    (or for `env`). Where the lock forks a package by version, an edge names the version it means."""
    by_name: dict[str, list[dict[str, Any]]] = {}
    for package in lock:
        by_name.setdefault(package["name"], []).append(package)

    def target(edge: dict[str, Any]) -> dict[str, Any]:
        candidates = [p for p in by_name[edge["name"]] if "version" not in edge or p.get("version") == edge["version"]]
        assert len(candidates) == 1, f"uv.lock edge {edge} matches {len(candidates)} packages"
        return candidates[0]

    top = target({"name": root})
    found = {top["name"]: top["version"]}
    edges: list[dict[str, Any]] = list(top.get("dependencies", []))
    for group in groups:
        edges += top.get("dev-dependencies", {}).get(group, [])
    seen_extras: set[tuple[str, str]] = set()
    while edges:
        edge = edges.pop()
        if "marker" in edge and not Marker(edge["marker"]).evaluate(dict(env) if env else None):
            continue
        package = target(edge)
        name = package["name"]
        for extra in edge.get("extra", []):
            if (name, extra) not in seen_extras:
                seen_extras.add((name, extra))
                edges += package.get("optional-dependencies", {}).get(extra, [])
        if name not in found:
            found[name] = package["version"]
            edges += package.get("dependencies", [])
    return found


def installed() -> dict[str, str]:
    """name -> version of every distribution in this interpreter's site-packages (only there: the repository root is
    on sys.path too, through the editable install, and may hold a stale egg-info of its own)."""
    paths = sorted({sysconfig.get_path("purelib"), sysconfig.get_path("platlib")})
    return {canonicalize_name(d.metadata["Name"]): d.version for d in metadata.distributions(path=paths)}


ROOT = canonicalize_name(PYPROJECT["project"]["name"])
LOCK: Lock = tomllib.loads((REPO / "uv.lock").read_text())["package"]


def test_the_installed_set_is_the_lock() -> None:
    want, have = required(LOCK, ROOT), installed()
    missing = {n: v for n, v in want.items() if n not in have}
    wrong = {n: (v, have[n]) for n, v in want.items() if n in have and have[n] != v}
    extra = {n: v for n, v in have.items() if n not in want}
    assert (missing, wrong, extra) == ({}, {}, {}), (
        "this environment is not uv.lock (missing, locked vs installed, not in the lock): "
        "`make install` syncs it; a virtualenv made by `python -m venv` keeps its pip, so remove it first"
    )
    # The walk reached the runtime dependencies and the dev tools the suite itself runs with.
    assert {"pulumi", "pulumi-kubernetes", "pydantic", "pytest", "ruff", "check-jsonschema"} <= set(want)


# ------------------------------------------------------------------------------------------------ the walk itself

TOY: Lock = [
    {
        "name": "app",
        "version": "1.0",
        "dependencies": [{"name": "a"}, {"name": "win", "marker": "sys_platform == 'win32'"}, {"name": "b", "extra": ["x"]}],
        "dev-dependencies": {"dev": [{"name": "t"}], "docs": [{"name": "d"}]},
    },
    {
        "name": "a",
        "version": "2.0",
        "dependencies": [
            {"name": "c", "version": "1.0", "marker": "python_version < '3.13'"},
            {"name": "c", "version": "2.0", "marker": "python_version >= '3.13'"},
        ],
    },
    {"name": "b", "version": "1.5", "optional-dependencies": {"x": [{"name": "bx"}], "y": [{"name": "by"}]}},
    {"name": "bx", "version": "0.1"},
    {"name": "by", "version": "0.2"},
    {"name": "c", "version": "1.0"},
    {"name": "c", "version": "2.0"},
    {"name": "win", "version": "9"},
    {"name": "t", "version": "8"},
    {"name": "d", "version": "7"},
]


@pytest.mark.parametrize(
    ("env", "groups", "want"),
    [
        ({"sys_platform": "linux", "python_version": "3.11"}, ("dev",), {"c": "1.0", "t": "8"}),
        ({"sys_platform": "win32", "python_version": "3.13"}, ("dev",), {"c": "2.0", "t": "8", "win": "9"}),
        ({"sys_platform": "linux", "python_version": "3.12"}, (), {"c": "1.0"}),
        ({"sys_platform": "linux", "python_version": "3.12"}, ("dev", "docs"), {"c": "1.0", "t": "8", "d": "7"}),
    ],
)
def test_the_walk_follows_markers_forks_extras_and_groups(
    env: dict[str, str], groups: tuple[str, ...], want: dict[str, str]
) -> None:
    always = {"app": "1.0", "a": "2.0", "b": "1.5", "bx": "0.1"}  # never "by": only extra x is asked for
    assert required(TOY, "app", groups, env) == always | want


def test_the_license_is_an_spdx_expression() -> None:
    """PEP 639: the table form (`{text = ...}`) is deprecated and warns on every build."""
    from packaging.licenses import canonicalize_license_expression

    license_ = PYPROJECT["project"]["license"]
    assert isinstance(license_, str) and canonicalize_license_expression(license_) == license_


def test_the_workflows_pulumi_cli_version_is_the_installed_sdks() -> None:
    import subprocess

    printed = subprocess.run([REPO / "tools" / "locked-version", "pulumi"], capture_output=True, text=True, check=True).stdout
    assert printed.strip() == metadata.version("pulumi") == required(LOCK, ROOT)["pulumi"]
