"""What every rule shares: metadata, config schema, name-pattern exemptions and tolerant property access.

A rule is a plain function that yields messages; ``resource_policy`` / ``stack_policy`` wrap it in the
SDK's policy classes with the metadata, the config schema (``excludeFor`` / ``includeFor`` /
``ignoreCase`` plus the rule's own parameters, defaults applied) and the exemption logic, so no rule
repeats them. Props arrive as the analyzer hands them over: engine (camelCase) names, every number a
float, unknown values behind ``unknown_checking_proxy``.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from pulumi_policy import (
    EnforcementLevel,
    PolicyComplianceFramework,
    PolicyConfigSchema,
    PolicyResource,
    ReportViolation,
    ResourceValidationArgs,
    ResourceValidationPolicy,
    Severity,
    StackValidationArgs,
    StackValidationPolicy,
)
from pulumi_policy import proxy as _proxy

Props = Mapping[str, Any]
Config = Mapping[str, Any]

EXCEPTION_ANNOTATION = "policy.gke-inference.dev/{policy}"
"""A Kubernetes object excluded by config must also carry this annotation with the reason (and ticket)."""
EXCEPTION_METADATA = "policy-gke-inference-dev-{policy}"
"""A node pool names an exception a rule grants in this instance-metadata key, the value its reason (a node pool has no
annotations, and its labels cannot hold a sentence)."""


def string_list(description: str, default: Sequence[str] = (), **item: Any) -> dict[str, Any]:
    """JSON schema of a list-of-strings parameter (`item` adds keywords such as pattern or format)."""
    return {"type": "array", "items": {"type": "string", **item}, "default": list(default), "description": description}


EXEMPTION_SCHEMA: dict[str, dict[str, Any]] = {
    "excludeFor": string_list("Resource names (regular expressions) this policy skips.", format="regex"),
    "includeFor": string_list("When non-empty, only resource names matching one of these are checked.", format="regex"),
    "ignoreCase": {"type": "boolean", "default": False, "description": "Match the name patterns case-insensitively."},
}

_UNKNOWNS = frozenset(
    {
        _proxy.UNKNOWN_BOOLEAN_VALUE,
        _proxy.UNKNOWN_NUMBER_VALUE,
        _proxy.UNKNOWN_STRING_VALUE,
        _proxy.UNKNOWN_ARRAY_VALUE,
        _proxy.UNKNOWN_OBJECT_VALUE,
        _proxy.UNKNOWN_ASSET_VALUE,
        _proxy.UNKNOWN_ARCHIVE_VALUE,
    }
)


class _Unknown:
    """A value the engine cannot know during preview (computed from another resource)."""

    def __repr__(self) -> str:
        return "UNKNOWN"


UNKNOWN = _Unknown()


@dataclass(frozen=True)
class Meta:
    """Everything a reviewer reads about a policy besides its code."""

    name: str
    description: str
    severity: Severity
    remediation: str
    cis: str | None = None
    """CIS GKE Benchmark item (v1.4 numbering), when one applies."""
    enforcement: EnforcementLevel = EnforcementLevel.MANDATORY
    """Level without a config file: the prod level. Per-environment levels live in stacks/policy.<env>.json."""
    params: Mapping[str, dict[str, Any]] = field(default_factory=dict)
    """JSON-schema properties of the policy's own parameters (each with a default)."""
    tags: tuple[str, ...] = ()

    def sdk_kwargs(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "description": self.description,
            "enforcement_level": self.enforcement,
            "config_schema": PolicyConfigSchema({**EXEMPTION_SCHEMA, **self.params}),
            "severity": self.severity,
            "framework": PolicyComplianceFramework(name="cis-gke", version="1.4", reference=self.cis) if self.cis else None,
            "tags": list(self.tags),
            "remediation_steps": self.remediation,
        }


def effective_config(policy_params: Mapping[str, dict[str, Any]], given: Config) -> dict[str, Any]:
    """Schema defaults overlaid with the configured values (the engine passes only what a file sets)."""
    defaults = {k: v["default"] for k, v in {**EXEMPTION_SCHEMA, **policy_params}.items() if "default" in v}
    return {**defaults, **dict(given)}


def _matches(patterns: Sequence[str], name: str, ignore_case: bool) -> bool:
    flags = re.IGNORECASE if ignore_case else 0
    return any(re.fullmatch(p, name, flags) for p in patterns)


def excluded_by_name(name: str, cfg: Config) -> bool:
    """True when excludeFor matches the name, or includeFor is set and does not."""
    ignore_case = bool(cfg.get("ignoreCase"))
    if _matches(cfg.get("excludeFor") or [], name, ignore_case):
        return True
    include = cfg.get("includeFor") or []
    return bool(include) and not _matches(include, name, ignore_case)


# ------------------------------------------------------------------------------- property access


def _unwrap(node: Any) -> Any:
    """One level of the SDK proxy: the dict or list it wraps (children stay proxied)."""
    if hasattr(node, "_DictProxy__target") or hasattr(node, "_ListProxy__target"):
        return node["__target"]
    return node


def raw(value: Any) -> Any:
    """The plain value behind the SDK's proxies, unknown sentinels replaced by UNKNOWN."""
    value = _unwrap(value)
    if isinstance(value, Mapping):
        return {k: raw(v) for k, v in value.items()}
    if isinstance(value, list):
        return [raw(v) for v in value]
    return UNKNOWN if isinstance(value, str) and value in _UNKNOWNS else value


def get(props: Any, path: str | tuple[str, ...], default: Any = None) -> Any:
    """props.a.b.c (or a tuple of keys, for keys with dots) as plain data, or `default` when a step is missing; unknown values come back as UNKNOWN.

    Rules decide what an unknown means (usually: computed from another resource in this stack, so
    set). A rule that indexes the proxied props directly instead is downgraded to advisory at preview.
    """
    node = props
    for key in path.split(".") if isinstance(path, str) else path:
        node = _unwrap(node)
        if isinstance(node, str) and node in _UNKNOWNS:
            return UNKNOWN
        if isinstance(node, Mapping) and key in node:
            node = node[key]
        elif isinstance(node, list) and key.isdigit() and int(key) < len(node):
            node = node[int(key)]
        else:
            return default
    return raw(node)


def is_unknown(value: Any) -> bool:
    return value is UNKNOWN


def as_int(value: Any) -> int | None:
    """Whole numbers arrive as floats (5.0) and Kubernetes quantities as strings ("4")."""
    if isinstance(value, bool) or value is None or value is UNKNOWN:
        return None
    if isinstance(value, int | float):
        return int(value)
    if isinstance(value, str) and re.fullmatch(r"\d+(\.0+)?", value):
        return int(float(value))
    return None


def items(value: Any) -> list[Any]:
    """A list property, or [] when absent or unknown."""
    return value if isinstance(value, list) else []


def mapping(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def listed(values: Iterable[Any]) -> str:
    """A stable, readable rendering of a set of values for messages."""
    return ", ".join(sorted(str(v) for v in values)) or "none"


# ----------------------------------------------------------------------------------- wrappers

ResourceCheck = Callable[[ResourceValidationArgs, Config], Iterable[str]]


@dataclass(frozen=True)
class Finding:
    """One stack-policy violation, attached to the resource it is about (None: the stack as a whole)."""

    message: str
    resource: PolicyResource | None = None


StackCheck = Callable[[StackValidationArgs, Config], Iterable[Finding]]


def annotation_reason(props: Props, policy: str) -> str:
    annotations = mapping(get(props, "metadata.annotations"))
    reason = annotations.get(EXCEPTION_ANNOTATION.format(policy=policy))
    return reason.strip() if isinstance(reason, str) else ""


def metadata_reason(props: Props, policy: str) -> str:
    """The reason a node pool gives, in its nodeConfig.metadata, for an exception to `policy` ('' when none)."""
    metadata = mapping(get(props, "nodeConfig.metadata"))
    reason = metadata.get(EXCEPTION_METADATA.format(policy=policy))
    return reason.strip() if isinstance(reason, str) else ""


def resource_policy(meta: Meta, types: Sequence[str], check: ResourceCheck) -> ResourceValidationPolicy:
    """A ResourceValidationPolicy running `check` on resources of `types` (prefixes ending in ':' or '/' match a family)."""
    exact = frozenset(t for t in types if not t.endswith((":", "/")))
    prefixes = tuple(t for t in types if t.endswith((":", "/")))

    def validate(args: ResourceValidationArgs, report: ReportViolation) -> None:
        if args.resource_type not in exact and not args.resource_type.startswith(prefixes):
            return
        cfg = effective_config(meta.params, args.get_config())
        if excluded_by_name(args.name, cfg):
            if not args.resource_type.startswith("kubernetes:") or annotation_reason(args.props, meta.name):
                return
            key = EXCEPTION_ANNOTATION.format(policy=meta.name)
            report(f"excluded by config but annotation {key} gives no reason; the exception does not apply", None)
        for message in check(args, cfg):
            report(message, None)

    return ResourceValidationPolicy(validate=validate, **meta.sdk_kwargs())


def stack_policy(meta: Meta, check: StackCheck) -> StackValidationPolicy:
    """A StackValidationPolicy; findings on resources excluded by name are dropped."""

    def validate(args: StackValidationArgs, report: ReportViolation) -> None:
        cfg = effective_config(meta.params, args.get_config())
        for finding in check(args, cfg):
            if finding.resource is not None and excluded_by_name(finding.resource.name, cfg):
                continue
            report(finding.message, finding.resource.urn if finding.resource else None)

    return StackValidationPolicy(validate=validate, **meta.sdk_kwargs())
