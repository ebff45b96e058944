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
