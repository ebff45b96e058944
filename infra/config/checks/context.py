"""What every cross-field check reads (catalog, region, parsed sections) and the list it appends to."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from infra.catalog import Catalog
from infra.config.errors import Problem, show
from infra.config.schema import _Sections


@dataclass(frozen=True)
class CheckContext:
    """Checks add Problems and carry on, so one run reports all of them."""

    catalog: Catalog
    region: str
    sections: _Sections
    project: str
    stack: str
    """The Pulumi stack's name: resource names derive from it (infra/names.py)."""
    problems: list[Problem] = field(default_factory=list)
    advisories: list[Problem] = field(default_factory=list)
    """Findings that do not stop a plan (dev's unjustified over-provisioning): printed by `plan`, kept in the summary."""

    def add(self, path: str, problem: str, expected: str, got: Any) -> None:
        self.problems.append(Problem(path, problem, expected, show(got)))

    def advise(self, path: str, problem: str, expected: str, got: Any) -> None:
        self.advisories.append(Problem(path, problem, expected, show(got)))


def in_region(zone: str, region: str) -> bool:
    return zone.rsplit("-", 1)[0] == region
