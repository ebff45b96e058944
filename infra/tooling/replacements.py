"""What `pulumi up` will do with each resource when a plan replaces a previous one: create, update, replace or
delete, and which of those it cannot carry out.

The rules are data (infra/catalog/replacements.yaml, with their sources): the fields whose change replaces a
resource (Terraform's ForceNew for the bridged GCP resources, pulumi-kubernetes' forceNew list for Kubernetes
objects), the fields an API refuses to change, and the inputs that name a cloud object. From them and the two
plans' inputs and options this module predicts each resource's action and the problems `up` would hit: a protected
resource replaced or deleted, a replacement that keeps the name of the object it replaces without deleting it
first, an update the API refuses.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any, Literal

import yaml

TABLE = Path(__file__).parents[1] / "catalog" / "replacements.yaml"
COMPONENT_PREFIXES = ("gke-inference:", "pulumi:pulumi:Stack")
"""Component resources and the stack: no cloud object of their own, their children carry the changes."""
PROVIDERS = "pulumi:providers:"
Action = Literal["create", "update", "replace", "delete"]


def normal(path: str) -> tuple[str, ...]:
    """A path in a form both naming schemes share: segments in snake_case, list positions and identity keys dropped,
    and a plural ending taken off (Pulumi pluralises Terraform's list blocks: guest_accelerator -> guestAccelerators)."""
    segments = []
    for raw in path.split("."):
        segment = re.sub(r"\[[^\]]*\]", "", raw)
        if not segment:
            continue
        snake = re.sub(r"(?<!^)(?=[A-Z])", "_", segment).lower()
        if snake.endswith("ies"):
            snake = snake[:-3] + "y"
        elif snake.endswith("s"):
            snake = snake[:-1]
        segments.append(snake)
    return tuple(segments)


def under(path: tuple[str, ...], rule: tuple[str, ...]) -> bool:
    return path[: len(rule)] == rule


@dataclass(frozen=True)
class Rule:
    """What replaces one resource type, what its API refuses to change, and what names its cloud object."""

    replace: tuple[str, ...] = ()
    conditional: Mapping[str, str] = field(default_factory=dict)
    """Replace-forcing only in the case named (e.g. a subnet range that shrinks): predicted as a replacement."""
    immutable: Mapping[str, str] = field(default_factory=dict)
    identity: tuple[str, ...] = ()
    """Inputs naming the cloud object; () for Kubernetes objects, which the provider deletes before replacing."""
    source: str = ""

    def forcing(self, path: str) -> str | None:
        """The rule path a changed input path falls under, if it forces a replacement."""
        changed = normal(path)
        for rule in (*self.replace, *self.conditional):
            if under(changed, normal(rule)):
                return rule
        return None

    def refusing(self, path: str) -> str | None:
        changed = normal(path)
        return next((rule for rule in self.immutable if under(changed, normal(rule))), None)


@cache
def rules() -> dict[str, Rule]:
    """Every resource type with a rule, by its Pulumi type token."""
    data = yaml.safe_load(TABLE.read_text())
    out: dict[str, Rule] = {}
    for token, row in data["gcp"].items():
        out[token] = Rule(
            replace=tuple(row["replace"]),
            conditional=row.get("conditional", {}),
            identity=tuple(row["identity"]),
            source=row["source"],
        )
    k8s = data["kubernetes"]
    every = tuple(k8s["every_kind"])
    for kind, row in k8s["kinds"].items():
        out[f"kubernetes:{kind}"] = Rule(replace=every + tuple(row.get("replace", ())), immutable=row.get("immutable", {}))
    for kind in k8s["in_place"]:
        out[f"kubernetes:{kind}"] = Rule(replace=every)
    return out


def rule_for(type_: str) -> Rule | None:
    """The type's rule; None for components, the stack and providers (no cloud object to replace)."""
    if type_.startswith(COMPONENT_PREFIXES) or type_.startswith(PROVIDERS):
        return None
    return rules()[type_]


def has_rule(type_: str) -> bool:
    return type_.startswith(COMPONENT_PREFIXES) or type_.startswith(PROVIDERS) or type_ in rules()


@dataclass
class Change:
    """One resource's predicted action, the changed input paths, and what stands in the way."""

    key: str
    type: str
    action: Action
    paths: list[tuple[str, Any, Any]] = field(default_factory=list)
    forcing: dict[str, str] = field(default_factory=dict)
    """Changed path -> the rule that makes it a replacement."""
    problems: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def _ignored(path: str, ignore: Iterable[str]) -> bool:
    changed = normal(path)
    return any(under(changed, normal(i)) for i in ignore)


def _get(inputs: Mapping[str, Any], dotted: str) -> Any:
    node: Any = inputs
    for part in dotted.split("."):
        node = node.get(part) if isinstance(node, Mapping) else None
    return node


def _camel(snake: str) -> str:
    head, *rest = snake.split("_")
    return head + "".join(p.title() for p in rest)


def classify(
    key: str,
    type_: str,
    base: Mapping[str, Any] | None,
    head: Mapping[str, Any] | None,
    paths: list[tuple[str, Any, Any]],
) -> Change | None:
    """The action `up` takes on one resource given its base and head plan records (None: absent on that side) and the
    changed input paths (path, base value, head value); None when nothing changes."""
    if base is None and head is None:
        return None
    if base is None:
        return Change(key, type_, "create")
    if head is None:
        change = Change(key, type_, "delete")
        if base["options"].get("protect"):
            change.problems.append(f"{key}: protected, and this change deletes it (pulumi up refuses)")
        return change
    options = head["options"]
    relevant = [p for p in paths if not _ignored(p[0], options.get("ignoreChanges", []))]
    if not relevant:
        return None
    change = Change(key, type_, "update", relevant)
    rule = rule_for(type_)
    if rule is None:
        return change
    for path, _, _ in relevant:
        forced = rule.forcing(path)
        if forced is None and any(under(normal(path), normal(r)) for r in options.get("replaceOnChanges", [])):
            forced = "replaceOnChanges"
        if forced is not None:
            change.forcing[path] = forced
        refused = rule.refusing(path)
        if refused is not None and forced is None:
            change.problems.append(
                f"{key}: {path} cannot change in place ({rule.immutable[refused]}); "
                "the update fails unless the resource is replaced (replaceOnChanges)"
            )
    if not change.forcing:
        return change
    change.action = "replace"
    first = next(iter(change.forcing))
    if base["options"].get("protect") or options.get("protect"):
        change.problems.append(f"{key}: protected, and {first} forces a replacement (pulumi up refuses)")
    if rule.identity and not options.get("deleteBeforeReplace"):
        inputs_a, inputs_b = base["inputs"], head["inputs"]
        same = [_camel(i) for i in rule.identity if _get(inputs_a, _camel(i)) == _get(inputs_b, _camel(i))]
        if len(same) == len(rule.identity):
            named = ", ".join(f"{i}={_get(inputs_b, i)}" for i in same if _get(inputs_b, i) is not None)
            change.problems.append(
                f"{key}: {first} forces a replacement that keeps its name ({named}); the new one is created before "
                "the old is deleted and collides with it (deleteBeforeReplace, or a name that changes with the field)"
            )
    return change
