"""Pins: infra/versions.py is the one source of every image, chart and CRD URL the stacks render, each of its pins
carries the `# renovate:` comment Renovate reads, and renovate.json's own regexes find every one of them (and
put each in exactly one component group)."""

from __future__ import annotations

import ast
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from fnmatch import fnmatch
from typing import Any

from conftest import REPO
from model_serving_helpers import CHART, Stack
from serving_helpers import walk_containers

from infra import versions

CONFIG_FILE = "kubernetes:yaml/v2:ConfigFile"
RENOVATE = json.loads((REPO / "renovate.json").read_text())
VERSIONS_PY = "infra/versions.py"
DATASOURCES = {"docker", "github-releases", "github-tags", "endoflife-date", "pypi"}
"""Renovate datasources a pin here may name (docker for every Image and Chart: an OCI chart is an OCI artifact)."""


# ------------------------------------------------------------------------------------------------ Renovate's view


def python_regex(renovate_regex: str) -> re.Pattern[str]:
    """Renovate's matchStrings are JavaScript/RE2 regexes compiled with only the `g` flag (so ^ and $ are the file's
    ends, as in Python without MULTILINE); the named-group syntax is the one difference that matters here."""
    return re.compile(re.sub(r"\(\?<(?=[A-Za-z_])", "(?P<", renovate_regex))


@dataclass(frozen=True)
class Found:
    line: int
    """1-based line of the pinned assignment (the match's last line)."""
    fields: dict[str, str]


def renovate_finds(path: str, text: str) -> list[Found]:
    """What renovate.json's regex managers extract from `path`, holding `text`."""
    out = []
    for manager in RENOVATE["customManagers"]:
        if not any(fnmatch(path, pattern) for pattern in manager["managerFilePatterns"]):
            continue
        for pattern in manager["matchStrings"]:
            for m in python_regex(pattern).finditer(text):
                fields = {k: v for k, v in m.groupdict().items() if v is not None}
                out.append(Found(text.count("\n", 0, m.end()) + 1, fields))
    return out


# ------------------------------------------------------------------------------------------------ the source's view


@dataclass(frozen=True)
class Pin:
    name: str
    line: int
    value: str
    dep_name: str | None
    """An Image's repository, a Chart's OCI name; None for a bare string, whose comment names it."""
    comment: str | None
    """The line above, when it is a `# renovate:` comment."""


def literal(node: ast.expr) -> str | None:
    return node.value if isinstance(node, ast.Constant) and isinstance(node.value, str) else None


def pins(text: str) -> tuple[list[Pin], dict[str, set[str]]]:
    """Every module-level assignment of versions.py that writes a version: literal pins (Image/Chart calls with only
    literal arguments, bare strings), and the derived ones (name -> the names it is built from)."""
    lines = text.splitlines()
    literal_pins: list[Pin] = []
    derived: dict[str, set[str]] = {}
    for node in ast.parse(text).body:
        if not (isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name)):
            continue
        name, value = node.targets[0].id, node.value
        above = lines[node.lineno - 2] if node.lineno > 1 else ""
        comment = above if above.startswith("# renovate:") else None
        if isinstance(value, ast.Call) and isinstance(value.func, ast.Name) and value.func.id in ("Image", "Chart"):
            args = [literal(a) for a in value.args]
            if all(a is not None for a in args) and not value.keywords:
                dep = str(args[0]).removeprefix("oci://")
                literal_pins.append(Pin(name, node.end_lineno or node.lineno, str(args[1]), dep, comment))
            else:
                derived[name] = {n.id for n in ast.walk(value) if isinstance(n, ast.Name) and n.id not in ("Image", "Chart")}
        elif (text_value := literal(value)) is not None:
            literal_pins.append(Pin(name, node.lineno, text_value, None, comment))
        elif isinstance(value, ast.JoinedStr):
            derived[name] = {n.id for n in ast.walk(value) if isinstance(n, ast.Name)}
    return literal_pins, derived


SOURCE = (REPO / VERSIONS_PY).read_text()
PINS, DERIVED = pins(SOURCE)


def module_values(kind: type) -> Iterator[Any]:
    return (v for k, v in vars(versions).items() if k.isupper() and isinstance(v, kind))


# ------------------------------------------------------------------------------------------------ versions.py ↔ Renovate


def test_the_source_reading_sees_every_pin_the_module_defines() -> None:
    names = {p.name for p in PINS} | set(DERIVED)
    assert {k for k, v in vars(versions).items() if k.isupper() and isinstance(v, versions.Image | versions.Chart)} <= names
    assert {"KUBERNETES_MINOR", "ROUTER_VERSION", "INFERENCE_OBJECTIVE_CRD", "ENDPOINT_PICKER_IMAGE"} <= names
    assert len(PINS) >= 10


def test_every_literal_pin_has_its_comment_and_every_derived_one_follows_a_pin() -> None:
    assert [p.name for p in PINS if p.comment is None] == []
    literal_names = {p.name for p in PINS}
    assert {name: uses for name, uses in DERIVED.items() if not uses & literal_names} == {}


def test_renovates_regexes_find_every_pin_with_its_name_and_version() -> None:
    found = {f.line: f.fields for f in renovate_finds(VERSIONS_PY, SOURCE)}
    assert set(found) == {p.line for p in PINS}, "a pin Renovate does not see, or a match that is no pin"
    for pin in PINS:
        fields = found[pin.line]
        assert fields["currentValue"] == pin.value, pin.name
        assert fields["datasource"] in DATASOURCES, pin.name
        if pin.dep_name is None:
            assert fields["depName"], pin.name
        else:
            assert (fields["depName"], fields["datasource"]) == (pin.dep_name, "docker"), pin.name


def test_a_pin_without_its_comment_is_missed_and_a_digest_is_read() -> None:
    """The two checks above can fail: drop one comment and the pin is lost; a digest written by hand is extracted."""
    dropped = SOURCE.replace("# renovate: datasource=docker\nVLLM_TPU_IMAGE", "VLLM_TPU_IMAGE", 1)
    assert dropped != SOURCE
    assert {f.fields["depName"] for f in renovate_finds(VERSIONS_PY, SOURCE)} - {
        f.fields["depName"] for f in renovate_finds(VERSIONS_PY, dropped)
    } == {"vllm/vllm-tpu"}
    assert [p.name for p in pins(dropped)[0] if p.comment is None] == ["VLLM_TPU_IMAGE"]
    digest = "sha256:" + "0" * 64
    pinned = SOURCE.replace('Image("vllm/vllm-tpu", "v0.33.0")', f'Image("vllm/vllm-tpu", "v0.33.0", "{digest}")', 1)
    assert pinned != SOURCE
    [tpu] = [f.fields for f in renovate_finds(VERSIONS_PY, pinned) if f.fields["depName"] == "vllm/vllm-tpu"]
    assert (tpu["currentValue"], tpu["currentDigest"]) == ("v0.33.0", digest)


def test_the_uv_pin_is_found_where_uv_reads_it() -> None:
    import tomllib

    text = (REPO / "pyproject.toml").read_text()
    [uv] = [f.fields for f in renovate_finds("pyproject.toml", text)]
    required = tomllib.loads(text)["tool"]["uv"]["required-version"]
    assert (uv["depName"], uv["datasource"], f"=={uv['currentValue']}") == ("uv", "pypi", required)


def group_rules() -> list[dict[str, Any]]:
    """The component groups of pins the regex managers find: group rules matching by name, for any manager."""
    return [r for r in RENOVATE["packageRules"] if "groupName" in r and "matchPackageNames" in r and "matchManagers" not in r]


def test_every_regex_found_pin_is_in_exactly_one_component_group() -> None:
    deps = {
        f.fields["depName"] for path in (VERSIONS_PY, "pyproject.toml") for f in renovate_finds(path, (REPO / path).read_text())
    }
    rules = group_rules()
    membership = {dep: [r["groupName"] for r in rules if any(fnmatch(dep, n) for n in r["matchPackageNames"])] for dep in deps}
    assert {dep: groups for dep, groups in membership.items() if len(groups) != 1} == {}
    named = {n for r in rules for n in r["matchPackageNames"]}
    assert named - deps == set(), "a group names a pin that no longer exists"
    assert len({g for groups in membership.values() for g in groups}) >= 7  # components, not one bucket


# ------------------------------------------------------------------------------------------------ rendered stacks ↔ versions.py


def rendered(stacks: dict[str, Stack]) -> tuple[set[str], set[tuple[str, str]], set[str]]:
    """Every container image, Helm chart (name, version) and applied manifest URL across the rendered stacks."""
    images, charts, files = set(), set(), set()
    for stack in stacks.values():
        for item in stack.items:
            images |= {c["image"] for c in walk_containers(item.get("inputs", {}))}
            if item["type"] == CHART:
                charts.add((item["inputs"]["chart"], item["inputs"]["version"]))
            elif item["type"] == CONFIG_FILE:
                files.add(item["inputs"]["file"])
    return images, charts, files


def test_every_image_chart_and_crd_the_stacks_render_comes_from_versions_py(stacks: dict[str, Stack]) -> None:
    images, charts, files = rendered(stacks)
    assert images == {i.ref for i in module_values(versions.Image)}, "an image not from versions.py, or a pin no stack uses"
    assert charts == {(c.chart, c.version) for c in module_values(versions.Chart)}
    assert files == {v for v in module_values(str) if v.startswith("https://")}
    assert all(":" in ref.rsplit("/", 1)[-1] and not ref.endswith(":latest") for ref in images)


def test_the_check_sees_a_stray_image(stacks: dict[str, Stack]) -> None:
    """An image written outside versions.py, anywhere in a resource's inputs, is caught."""
    stray = {
        "type": "kubernetes:apps/v1:Deployment",
        "inputs": {"spec": {"template": {"spec": {"containers": [{"image": "busybox:1.37"}]}}}},
    }
    changed = {**stacks, "dev": Stack(stacks["dev"].cfg, [*stacks["dev"].items, stray], {}, {})}
    assert rendered(changed)[0] - rendered(stacks)[0] == {"busybox:1.37"}
