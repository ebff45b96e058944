"""Moving an environment deployed as one stack (project `gke-inference`, before the split) into its two stacks.

`pulumi state move` moves resources, with their providers, from one stack to another without touching the cloud.
Every resource of the old stack goes to exactly one of the new ones: the serving plan's to the serving stack, the
platform plan's to the platform stack. The old URNs are the new ones with the old project: the programs keep every
resource's name, parent chain and provider names, so the moved state matches what each new program registers.
Afterwards each new stack's preview shows only what the split adds: the platform's contract outputs, and the
serving stack's StackReference.
"""

from __future__ import annotations

import shlex
from collections.abc import Iterable

from infra.tooling.plan import STACK_REFERENCE, Captured

OLD_PROJECT = "gke-inference"
ORGANIZATION = "organization"
"""A self-managed backend's organization name (the state bucket these stacks live in)."""
NOT_MOVED = ("pulumi:pulumi:Stack", "pulumi:providers:", STACK_REFERENCE)
"""Created by each new stack itself: its root, its providers (moved along with the resources that use them) and the
serving stack's StackReference, which the old stack never had."""


def old_urn(urn: str) -> str:
    """The URN the resource has in the single stack: the same, under the old project."""
    head, _project, rest = urn.split("::", 2)
    return f"{head}::{OLD_PROJECT}::{rest}"


def moves(resources: Iterable[Captured]) -> dict[str, list[str]]:
    """Layer -> the old stack's URNs to move into that layer's stack."""
    out: dict[str, list[str]] = {"platform": [], "serving": []}
    for r in resources:
        if not r.type.startswith(NOT_MOVED):
            out[r.layer].append(old_urn(r.urn))
    return {layer: sorted(urns) for layer, urns in out.items()}


def commands(stack: str, resources: Iterable[Captured]) -> list[str]:
    """The shell commands, run from programs/serving (the serving moves) and programs/platform (the rest)."""
    source = f"{ORGANIZATION}/{OLD_PROJECT}/{stack}"
    lines = []
    for layer, urns in moves(resources).items():
        dest = f"{ORGANIZATION}/{OLD_PROJECT}-{layer}/{stack}"
        args = " ".join(shlex.quote(u) for u in urns)
        lines.append(f"(cd programs/{layer} && pulumi state move --source {source} --dest {dest} --yes {args})")
    return lines
