"""Reads a stack's config, parses it into the sections, runs the checks and builds the StackConfig.

Pydantic's own errors are translated into Problems of the same ``<key path>: <problem>; expected
<x>, got <y>`` form as the cross-field checks, with the key path under our namespace.
"""

from __future__ import annotations

import difflib
import json
import re
from collections.abc import Collection, Iterator, Mapping
from typing import Any

from pydantic import BaseModel, ValidationError

from infra.catalog import Catalog
from infra.catalog import load as load_catalog
from infra.config.checks import CheckContext, resolve
from infra.config.errors import NAMESPACE, ConfigError, Problem, ns_path, one_of, show
from infra.config.model import StackConfig
from infra.config.schema import SECRET_KEYS, ProtectionConfig, _Sections


def _decode(value: Any) -> Any:
    """The engine passes structured config as JSON strings; stack files give it parsed."""
    if isinstance(value, str) and value[:1] in "{[":
        try:
            return json.loads(value)
        except json.JSONDecodeError:
            return value
    return value


def _pydantic_problems(error: ValidationError) -> Iterator[Problem]:
    for item in error.errors():
        loc = tuple(p for p in item["loc"] if not (isinstance(p, str) and p.startswith("function-")))
        path = ns_path(*loc) if loc else NAMESPACE
        kind, got = item["type"], item.get("input")
        if kind == "extra_forbidden":
            known = _known_fields(loc[:-1])
            close = difflib.get_close_matches(str(loc[-1]), known, n=1)
            hint = f" (did you mean '{close[0]}'?)" if close else ""
            yield Problem(path, f"unknown key{hint}", one_of(known), repr(loc[-1]))
        elif kind == "missing":
            yield Problem(path, "required key is missing", "a value", "nothing")
        elif kind == "literal_error":
            yield Problem(path, "not an allowed value", item["ctx"]["expected"].replace("'", ""), show(got))
        else:
            yield Problem(path, item["msg"].lower(), _expected_from(item), show(got))


def _expected_from(item: Any) -> str:
    ctx = item.get("ctx") or {}
    if "pattern" in ctx:
        return f"a string matching {ctx['pattern']}"
    for bound, word in (("ge", ">="), ("gt", ">"), ("le", "<="), ("lt", "<")):
        if bound in ctx:
            return f"a number {word} {ctx[bound]}"
    kind = item["type"]
    return {
        "int_type": "an integer",
        "int_parsing": "an integer",
        "int_from_float": "an integer",
        "bool_type": "true or false",
        "bool_parsing": "true or false",
        "string_type": "a string",
        "float_type": "a number",
        "float_parsing": "a number",
        "dict_type": "a mapping",
        "model_type": "a mapping",
        "tuple_type": "a list",
    }.get(kind, "a valid value")


def _known_fields(loc: tuple[Any, ...]) -> list[str]:
    """Field names of the model at `loc` (dict keys in loc are skipped)."""
    model: type[BaseModel] = _Sections
    for part in loc:
        field = model.model_fields.get(part) if isinstance(part, str) else None
        if field is None:
            continue
        inner = _model_in(field.annotation)
        if inner is not None:
            model = inner
    return sorted(model.model_fields)


def _model_in(annotation: Any) -> type[BaseModel] | None:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in getattr(annotation, "__args__", ()):
        found = _model_in(arg)
        if found is not None:
            return found
    return None


def load_config(
    raw: Mapping[str, Any],
    *,
    stack: str,
    secret_keys: Collection[str] = (),
    catalog: Catalog | None = None,
) -> StackConfig:
    """Parse and check a whole stack configuration; raise ConfigError listing every problem.

    `raw` maps full config keys (``gcp:region``, ``gke-inference:tpu_pools``) to values, either
    parsed or as the JSON strings the engine passes. `secret_keys` are the full keys stored as
    secrets (``secure:`` in the stack file).
    """
    catalog = catalog or load_catalog()
    problems: list[Problem] = []
    project = raw.get("gcp:project")
    region = raw.get("gcp:region")
    if not isinstance(project, str) or not re.fullmatch(r"[a-z][-a-z0-9]{4,28}[a-z0-9]", project):
        problems.append(Problem("gcp:project", "invalid or missing project id", "a GCP project id", show(project)))
    if not isinstance(region, str) or not re.fullmatch(r"[a-z]+-[a-z]+\d", region):
        problems.append(Problem("gcp:region", "invalid or missing region", "a GCP region such as us-east5", show(region)))

    ours = {k.split(":", 1)[1]: _decode(v) for k, v in raw.items() if k.startswith(f"{NAMESPACE}:")}
    for key in sorted(SECRET_KEYS & ours.keys()):
        if f"{NAMESPACE}:{key}" not in secret_keys:
            problems.append(
                Problem(
                    ns_path(key),
                    "a secret stored in plaintext (set it with `pulumi config set --secret`)",
                    "a secure: value",
                    "plaintext",
                )
            )
    try:
        sections = _Sections.model_validate(ours)
    except ValidationError as error:
        raise ConfigError(problems + list(_pydantic_problems(error))) from None
    if problems:
        raise ConfigError(problems)
    assert isinstance(project, str) and isinstance(region, str)
    ctx = CheckContext(catalog, region, sections, project, stack)
    tpu_pools, gpu_pools, workloads = resolve(ctx)
    if ctx.problems:
        raise ConfigError(ctx.problems)
    return StackConfig(
        stack=stack,
        project=project,
        region=region,
        sections=sections,
        protection=sections.protection or ProtectionConfig.for_environment(sections.environment),
        tpu_pools=tpu_pools,
        gpu_pools=gpu_pools,
        workloads=workloads,
        has_hf_token=sections.hf_token is not None,
        advisories=tuple(str(p) for p in sorted(set(ctx.advisories), key=lambda p: (p.path, p.problem))),
    )


def read_pulumi_config() -> tuple[dict[str, Any], set[str]]:
    """Every config key the running Pulumi program was given, and which of them are secret."""
    from pulumi.runtime import config as runtime_config

    values = {**runtime_config.get_config_env(), **runtime_config.CONFIG.get()}
    # The language host passes secret keys either through set_all_config or the environment.
    secret = {k for k in values if runtime_config.is_config_secret(k)} | set(runtime_config.get_config_secret_keys_env())
    return values, secret


def program_config() -> StackConfig:
    """The running program's checked configuration, or a RunError listing every problem before any resource exists."""
    import pulumi

    values, secret_keys = read_pulumi_config()
    try:
        return load_config(values, stack=pulumi.get_stack(), secret_keys=secret_keys)
    except ConfigError as error:
        # RunError prints the message without a traceback; no resource has been registered yet.
        raise pulumi.RunError(f"invalid stack configuration:\n{error}") from None
