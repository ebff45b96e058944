"""Offline admission of custom resources against their CRDs, in the order an API server applies on create:
structural defaulting, structural validation (types, required, enum, pattern, bounds, formats, list
types; an unknown field is reported, where the API server would silently prune it), then every
`x-kubernetes-validations` CEL rule except transition rules (`oldSelf`), which have nothing to compare
on create. CEL rules run only on an object that passed the structural checks: a broken shape would
only make rules fail for the same reason.

Not checked: validating/mutating admission webhooks (e.g. LeaderWorkerSet's, which enforces the
size/subGroupSize arithmetic), CEL cost limits, and the ObjectMeta rules beyond field types.

    index = load_crds(Path("../shared/schemas"))
    for problem in check_all(objects, index): print(problem)
"""

from __future__ import annotations

import copy
from collections.abc import Iterable
from dataclasses import replace
from typing import Any

from infra.admission.crds import CRDIndex, CRDVersion, load_crds
from infra.admission.problems import Problem, subject
from infra.admission.rules import check_node
from infra.admission.structural import Validator, default

__all__ = ["BUILT_IN_GROUPS", "CRDIndex", "CRDVersion", "Problem", "check", "check_all", "is_custom_resource", "load_crds"]

BUILT_IN_GROUPS = frozenset(
    {
        "",
        "admissionregistration.k8s.io",
        "apiextensions.k8s.io",
        "apiregistration.k8s.io",
        "apps",
        "authentication.k8s.io",
        "authorization.k8s.io",
        "autoscaling",
        "batch",
        "certificates.k8s.io",
        "coordination.k8s.io",
        "discovery.k8s.io",
        "events.k8s.io",
        "flowcontrol.apiserver.k8s.io",
        "internal.apiserver.k8s.io",
        "networking.k8s.io",
        "node.k8s.io",
        "policy",
        "rbac.authorization.k8s.io",
        "resource.k8s.io",
        "scheduling.k8s.io",
        "storage.k8s.io",
        "storagemigration.k8s.io",
    }
)
"""API groups the API server serves itself (their objects have OpenAPI schemas, not CRDs)."""


def _group_version(obj: dict[str, Any]) -> tuple[str, str]:
    group, _, version = str(obj.get("apiVersion", "")).rpartition("/")
    return group, version


def is_custom_resource(obj: dict[str, Any]) -> bool:
    return _group_version(obj)[0] not in BUILT_IN_GROUPS


def check(obj: dict[str, Any], index: CRDIndex) -> list[Problem]:
    """Every problem an API server would find creating `obj` (the object itself is left untouched)."""
    group, version = _group_version(obj)
    crd = index.get(group, version, str(obj.get("kind")))
    if crd is None:
        expected = "a CustomResourceDefinition serving it"
        return [
            Problem(
                subject(obj),
                "apiVersion",
                f"no CRD for {group}/{version} {obj.get('kind')} in {index.directory}",
                expected,
                "none",
            )
        ]
    defaulted = copy.deepcopy(obj)
    default(defaulted, crd.schema)
    validator = Validator()
    validator.root(defaulted, crd.schema)
    problems = validator.problems
    if not problems:
        check_node(defaulted, crd.schema, "", crd.compiled, problems)
    return [replace(p, subject=subject(obj)) for p in problems]


def check_all(objects: Iterable[dict[str, Any]], index: CRDIndex) -> list[Problem]:
    """The problems of every custom resource among `objects` (objects of built-in groups are skipped)."""
    return [p for obj in objects if is_custom_resource(obj) for p in check(obj, index)]
