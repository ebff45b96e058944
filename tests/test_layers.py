"""Layering: components are the bottom layer and take plain typed args; only the composition knows the config."""

from __future__ import annotations

import ast

from conftest import REPO

COMPONENTS = sorted((REPO / "components").rglob("*.py"))


def infra_imports(source: str) -> list[str]:
    """Every module under `infra` that `source` imports, however it spells the import."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.append(node.module)
    return [name for name in found if name == "infra" or name.startswith("infra.")]


def test_the_check_sees_every_spelling() -> None:
    source = "import infra\nimport infra.sizing as s\nfrom infra.config import X\ndef f():\n    from infra import plan\n"
    assert infra_imports(source) == ["infra", "infra.sizing", "infra.config", "infra"]
    assert infra_imports("import infrastructure\nfrom components.cluster import Cluster\n") == []


def test_components_do_not_import_infra() -> None:
    assert len(COMPONENTS) > 5
    offenders = {str(p.relative_to(REPO)): infra_imports(p.read_text()) for p in COMPONENTS}
    assert {path: names for path, names in offenders.items() if names} == {}


PROGRAM_ROOMS = ("programs", "infra/platform", "infra/serving", "infra/config", "infra/catalog", "components")
PROGRAM_CODE = [
    *sorted(p for room in PROGRAM_ROOMS for p in (REPO / room).rglob("*.py")),
    *(REPO / "infra" / name for name in ("contract.py", "names.py", "sizing.py", "versions.py")),
]


def imports_tooling(source: str) -> bool:
    for node in ast.walk(ast.parse(source)):
        named = isinstance(node, ast.ImportFrom) and node.level == 0 and node.module == "infra"
        if named and any(alias.name == "tooling" for alias in node.names):
            return True
    return any(name == "infra.tooling" or name.startswith("infra.tooling.") for name in infra_imports(source))


def test_the_programs_do_not_import_the_offline_tooling() -> None:
    """The two programs and what they run stay apart from plan/diff/report: a deploy never loads them."""
    assert imports_tooling("from infra import tooling\n") and imports_tooling("import infra.tooling.plan\n")
    assert len(PROGRAM_CODE) > 20
    assert [str(p.relative_to(REPO)) for p in PROGRAM_CODE if imports_tooling(p.read_text())] == []
