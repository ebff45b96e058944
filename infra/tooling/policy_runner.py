"""Run the CrossGuard pack over a plan capture offline, the way the Pulumi engine's analyzer would.

Each captured resource is turned into the SDK's own argument types: inputs go through a protobuf
``Struct`` and ``pulumi_policy``'s ``deserialize_properties`` (so whole numbers arrive as floats, as
from the engine) and ``unknown_checking_proxy``; options become ``PolicyResourceOptions``; stack
policies get ``PolicyResource`` objects linked by parent, dependencies and property dependencies.
The stack's config is visible to the policies as the engine makes it visible (``pulumi.runtime``
config). Config files use the ``--policy-pack-config`` format: ``{"all": level, "<policy>": level |
{"enforcementLevel": level, ...properties}}``, validated against each policy's schema.
"""

from __future__ import annotations

import asyncio
import contextvars
import inspect
import json
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import jsonschema
from google.protobuf import json_format, struct_pb2
from pulumi.runtime import config as runtime_config
from pulumi_policy import (
    EnforcementLevel,
    Policy,
    PolicyCustomTimeouts,
    PolicyProviderResource,
    PolicyResource,
    PolicyResourceOptions,
    ResourceValidationArgs,
    ResourceValidationPolicy,
    StackValidationArgs,
    StackValidationPolicy,
)
from pulumi_policy.deserialize import deserialize_properties
from pulumi_policy.proxy import UNKNOWN_STRING_VALUE, UnknownValueError, unknown_checking_proxy

from infra.tooling.plan import UNKNOWN, Captured

STACK_TYPE = "pulumi:pulumi:Stack"


class PolicyConfigError(ValueError):
    """A policy config file that names unknown policies or breaks a policy's config schema."""


@dataclass(frozen=True)
class Violation:
    policy: str
    enforcement: str
    severity: str
    message: str
    urn: str | None
    resource: str
    """'<type>: <name>' of the resource, or the stack for stack-wide findings."""

    @property
    def mandatory(self) -> bool:
        return self.enforcement == EnforcementLevel.MANDATORY.value

    def as_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class PolicySettings:
    enforcement: EnforcementLevel
    properties: Mapping[str, Any]


def _level(value: Any, where: str) -> EnforcementLevel:
    try:
        return EnforcementLevel(value)
    except ValueError:
        raise PolicyConfigError(
            f"{where}: enforcementLevel {value!r} is not one of advisory, mandatory, remediate, disabled"
        ) from None


def resolve_config(policies: Sequence[Policy], config: Mapping[str, Any]) -> dict[str, PolicySettings]:
    """Per-policy enforcement and properties, as the CLI resolves --policy-pack-config (per-policy over 'all')."""
    known = {p.name for p in policies}
    unknown = sorted(set(config) - known - {"all"})
    if unknown:
        raise PolicyConfigError(f"no such policy: {', '.join(unknown)}")
    everyone = config.get("all")
    default_level = (
        _level(everyone if isinstance(everyone, str) else (everyone or {}).get("enforcementLevel"), "all") if everyone else None
    )
    settings = {}
    for policy in policies:
        entry = config.get(policy.name, {})
        if isinstance(entry, str):
            entry = {"enforcementLevel": entry}
        properties = {k: v for k, v in entry.items() if k != "enforcementLevel"}
        schema = policy.config_schema
        # The schemas themselves are checked by the pack's tests; here only the values are validated.
        validator = jsonschema.Draft7Validator(
            {
                "type": "object",
                "properties": schema.properties if schema else {},
                "required": (schema.required or []) if schema else [],
                "additionalProperties": False,
            }
        )
        error = jsonschema.exceptions.best_match(validator.iter_errors(properties))
        if error is not None:
            raise PolicyConfigError(f"{policy.name}: {error.message}")
        level = entry.get("enforcementLevel")
        enforcement = (
            _level(level, policy.name) if level else default_level or policy.enforcement_level or EnforcementLevel.ADVISORY
        )
        settings[policy.name] = PolicySettings(enforcement, properties)
    return settings


def load_config(path: Path) -> dict[str, Any]:
    value = json.loads(path.read_text())
    if not isinstance(value, dict):
        raise PolicyConfigError(f"{path}: expected a JSON object of policy names")
    return value


def engine_props(inputs: Mapping[str, Any]) -> Mapping[str, Any]:
    """Inputs as the analyzer receives them: through a protobuf Struct (numbers become floats), unknowns restored."""
    struct = struct_pb2.Struct()
    struct.update(_restore_unknowns(inputs))
    return unknown_checking_proxy(deserialize_properties(json_format.MessageToDict(struct)))


def _restore_unknowns(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _restore_unknowns(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_restore_unknowns(v) for v in value]
    return UNKNOWN_STRING_VALUE if value == UNKNOWN else value


def _options(r: Captured) -> PolicyResourceOptions:
    o = r.options
    return PolicyResourceOptions(
        protect=bool(o.get("protect")),
        ignore_changes=list(o.get("ignoreChanges", [])),
        delete_before_replace=bool(o.get("deleteBeforeReplace")),
        aliases=[],
        custom_timeouts=PolicyCustomTimeouts(0, 0, 0),
        additional_secret_outputs=list(o.get("additionalSecretOutputs", [])),
        parent=r.parent,
    )


class _Collector:
    def __init__(self, policy: Policy, level: EnforcementLevel, default: Captured | None, by_urn: Mapping[str, Captured]):
        self.policy, self.level, self.default, self.by_urn = policy, level, default, by_urn
        self.found: list[Violation] = []

    def __call__(self, message: str, urn: str | None = None) -> None:
        target = self.by_urn.get(urn) if urn else self.default
        self.found.append(
            Violation(
                policy=self.policy.name,
                enforcement=self.level.value,
                severity=self.policy.severity.value if self.policy.severity else "",
                message=message,
                urn=target.urn if target else None,
                resource=f"{target.type}: {target.name}" if target else "stack",
            )
        )


def _unknown_diagnostic(policy: Policy, target: Captured | None, error: UnknownValueError) -> Violation:
    """What the engine reports when a policy reads an unknown value at preview: an advisory diagnostic."""
    return Violation(
        policy=policy.name,
        enforcement=EnforcementLevel.ADVISORY.value,
        severity=policy.severity.value if policy.severity else "",
        message=f"can't run policy '{policy.name}' during preview: {error.message}",
        urn=target.urn if target else None,
        resource=f"{target.type}: {target.name}" if target else "stack",
    )


def run(
    captured: Sequence[Captured],
    policies: Sequence[Policy],
    config: Mapping[str, Any],
    stack_config: Mapping[str, str] | None = None,
) -> list[Violation]:
    """Every violation the pack reports for the captured resources under `config` (disabled policies skipped)."""
    settings = resolve_config(policies, config)
    result: list[Violation] = []

    def analyze() -> None:
        runtime_config.set_all_config(dict(stack_config or {}), None)
        result.extend(_analyze(captured, policies, settings))

    # Stack config lives in a context variable: a fresh context keeps it away from the caller's.
    contextvars.Context().run(analyze)
    return result


def _wait(result: Any) -> None:
    """Async validators return an awaitable; the engine's analyzer runs it to completion."""
    if inspect.isawaitable(result):
        asyncio.run(_awaited(result))


async def _awaited(result: Any) -> None:
    await result


def _analyze(captured: Sequence[Captured], policies: Sequence[Policy], settings: Mapping[str, PolicySettings]) -> list[Violation]:
    by_urn = {r.urn: r for r in captured}
    resources = list(captured)
    props = {r.urn: engine_props(r.inputs) for r in resources}
    providers = {
        r.urn: PolicyProviderResource(r.type, props[r.urn], r.urn, r.name)
        for r in resources
        if r.type.startswith("pulumi:providers:")
    }
    stack_resources = {
        r.urn: PolicyResource(r.type, props[r.urn], r.urn, r.name, _options(r), providers.get(r.provider or ""), None, [], {})
        for r in resources
    }
    for r in resources:
        resource = stack_resources[r.urn]
        resource.parent = stack_resources.get(r.parent or "")
        resource.dependencies = [stack_resources[d] for d in r.dependencies if d in stack_resources]
        resource.property_dependencies = {
            key: [stack_resources[d] for d in urns if d in stack_resources] for key, urns in r.property_dependencies.items()
        }
    stack = next((r for r in captured if r.type == STACK_TYPE), None)
    found: list[Violation] = []
    for policy in policies:
        setting = settings[policy.name]
        if setting.enforcement == EnforcementLevel.DISABLED:
            continue
        # A remediation that still violates is reported as mandatory, as by the engine.
        level = EnforcementLevel.MANDATORY if setting.enforcement == EnforcementLevel.REMEDIATE else setting.enforcement
        if isinstance(policy, ResourceValidationPolicy):
            for r in resources:
                report = _Collector(policy, level, r, by_urn)
                args = ResourceValidationArgs(
                    r.type, props[r.urn], r.urn, r.name, _options(r), providers.get(r.provider or ""), setting.properties
                )
                try:
                    _wait(policy.validate(args, report))
                except UnknownValueError as error:
                    found.append(_unknown_diagnostic(policy, r, error))
                found.extend(report.found)
        elif isinstance(policy, StackValidationPolicy):
            report = _Collector(policy, level, stack, by_urn)
            try:
                _wait(policy.validate(StackValidationArgs(list(stack_resources.values()), setting.properties), report))
            except UnknownValueError as error:
                found.append(_unknown_diagnostic(policy, stack, error))
            found.extend(report.found)
    return found
