"""The pack as a whole: names, metadata, config schemas, the per-environment config files, __main__."""

from __future__ import annotations

import importlib.util
import json
import re
import runpy
import sys
from pathlib import Path
from typing import Any

import jsonschema
import pulumi_policy
import pytest
from pulumi_policy import EnforcementLevel, ResourceValidationPolicy, StackValidationPolicy
from pulumi_policy.policy import _PolicyAnalyzerServicer

from infra.tooling.policy_runner import PolicyConfigError, load_config, resolve_config
from policies.base import EXEMPTION_SCHEMA
from policies.registry import MODULES, PACK_NAME, POLICIES

REPO = Path(__file__).resolve().parents[2]
ENVIRONMENTS = ("dev", "staging", "prod")
ADVISORY_BY_DESIGN = {"inf-gke-security-posture", "inf-k8s-service-type"}
"""Advisory even in prod (reference §4); see policies/README.md."""
STARRED = {"inf-gke-binary-authorization", "inf-gcs-cmek", "inf-k8s-nonroot-readonly"}
"""Reference ★: advisory in dev, mandatory in prod."""
CIS_CLUSTER_CONTROLS = {
    "inf-gke-private-nodes": "5.6.5",
    "inf-gke-control-plane-restricted": "5.6.3",
    "inf-gke-workload-identity": "5.2.2",
    "inf-gke-secrets-kms": "5.3.1",
    "inf-gke-node-sa-not-default": "5.2.1",
    "inf-gke-cos-containerd": "5.5.1",
}


def test_names_are_unique_prefixed_and_not_reserved() -> None:
    names = [p.name for p in POLICIES]
    assert len(names) == len(set(names))
    assert all(re.fullmatch(r"inf-[a-z0-9]+(-[a-z0-9]+)+", n) for n in names), names
    assert "all" not in names


def test_catalogue_size() -> None:
    resource = [p for p in POLICIES if isinstance(p, ResourceValidationPolicy)]
    stack = [p for p in POLICIES if isinstance(p, StackValidationPolicy)]
    assert (len(resource), len(stack)) == (41, 13)


@pytest.fixture(scope="module")
def built() -> dict[str, pulumi_policy.Policy]:
    """The pack built anew, inside the test: each module builds its policies when imported, which mutation testing's
    workers did before they took their mutant; a fresh copy of each module calls policies.base's builders now."""
    fresh: dict[str, pulumi_policy.Policy] = {}
    for module in MODULES:
        spec = importlib.util.spec_from_file_location(f"fresh_{module.__name__}", module.__file__)
        assert spec and spec.loader
        copy = importlib.util.module_from_spec(spec)
        sys.modules[spec.name] = copy  # its dataclasses look their module up there
        try:
            spec.loader.exec_module(copy)
        finally:
            del sys.modules[spec.name]
        fresh |= {p.name: p for p in copy.POLICIES}
    assert list(fresh) == [p.name for p in POLICIES]
    return fresh


@pytest.mark.parametrize("name", [p.name for p in POLICIES])
def test_metadata_is_complete(built: dict[str, pulumi_policy.Policy], name: str) -> None:
    policy = built[name]
    assert policy.description and policy.description.endswith(".")
    assert policy.severity is not None
    assert policy.remediation_steps and len(policy.remediation_steps) > 20
    assert policy.enforcement_level in (EnforcementLevel.MANDATORY, EnforcementLevel.ADVISORY)
    if policy.framework is not None:
        assert policy.framework.name == "cis-gke" and re.fullmatch(r"\d+(\.\d+)+", policy.framework.reference or "")


def test_cis_references_where_the_benchmark_has_an_item(built: dict[str, pulumi_policy.Policy]) -> None:
    refs = {p.name: p.framework.reference for p in built.values() if p.framework}
    assert {k: refs.get(k) for k in CIS_CLUSTER_CONTROLS} == CIS_CLUSTER_CONTROLS


@pytest.mark.parametrize("name", [p.name for p in POLICIES])
def test_config_schema_is_valid_json_schema_with_exemptions(built: dict[str, pulumi_policy.Policy], name: str) -> None:
    policy = built[name]
    schema = policy.config_schema
    assert schema is not None
    assert set(EXEMPTION_SCHEMA) <= set(schema.properties)
    assert "enforcementLevel" not in schema.properties
    document: dict[str, Any] = {"type": "object", "properties": schema.properties}
    jsonschema.Draft7Validator.check_schema(document)
    for name, prop in schema.properties.items():
        if "default" in prop:
            jsonschema.validate(prop["default"], prop)  # every default satisfies its own schema
        assert prop.get("description"), f"{policy.name}.{name} has no description"


def test_schema_rejects_a_bad_parameter() -> None:
    with pytest.raises(PolicyConfigError, match=r"inf-stack-node-sa-roles: 'editor' does not match"):
        resolve_config(POLICIES, {"inf-stack-node-sa-roles": {"allowedRoles": ["editor"]}})
    with pytest.raises(PolicyConfigError, match="Additional properties are not allowed"):
        resolve_config(POLICIES, {"inf-gke-private-nodes": {"excludeFr": ["x"]}})
    with pytest.raises(PolicyConfigError, match="no such policy: inf-gke-privat-nodes"):
        resolve_config(POLICIES, {"inf-gke-privat-nodes": "mandatory"})


def test_all_key_and_per_policy_precedence() -> None:
    settings = resolve_config(POLICIES, {"all": "advisory", "inf-gke-private-nodes": {"enforcementLevel": "disabled"}})
    assert settings["inf-gke-private-nodes"].enforcement is EnforcementLevel.DISABLED
    assert settings["inf-tpu-pool-shape"].enforcement is EnforcementLevel.ADVISORY
    assert resolve_config(POLICIES, {})["inf-tpu-pool-shape"].enforcement is EnforcementLevel.MANDATORY


def test_analyzer_serves_the_metadata() -> None:
    """GetAnalyzerInfo is what the CLI reads: every schema must survive the protobuf conversion."""
    info = _PolicyAnalyzerServicer(PACK_NAME, "0.0.1", POLICIES, EnforcementLevel.ADVISORY).GetAnalyzerInfo(None, None)
    served = {p.name: p for p in info.policies}
    assert set(served) == {p.name for p in POLICIES}
    assert served["inf-k8s-image-pinned"].configSchema.properties["requireDigest"]["default"] is True
    assert served["inf-gke-private-nodes"].framework.reference == "5.6.5"


def test_main_builds_the_pack_from_the_registry(monkeypatch: pytest.MonkeyPatch) -> None:
    built: dict[str, Any] = {}
    monkeypatch.setattr(pulumi_policy, "PolicyPack", lambda **kwargs: built.update(kwargs))
    runpy.run_path(str(REPO / "policies" / "__main__.py"))
    assert built == {"name": PACK_NAME, "policies": POLICIES}


def test_the_pack_runs_in_the_programs_locked_environment() -> None:
    """Pulumi syncs the program's and the pack's interpreter with uv: both must name the one environment (the pack's
    path is relative to its own directory), and the pack must not be a uv project of its own (its exact sync would
    strip the program's packages from that environment)."""
    import yaml

    pack = yaml.safe_load((REPO / "policies" / "PulumiPolicy.yaml").read_text())["runtime"]
    venv = (REPO / "policies" / pack["options"]["virtualenv"]).resolve()
    for layer in ("platform", "serving"):
        project = yaml.safe_load((REPO / "programs" / layer / "Pulumi.yaml").read_text())
        program = project["runtime"]
        assert program["name"] == pack["name"] == "python"
        assert program["options"]["toolchain"] == pack["options"]["toolchain"] == "uv"
        assert (REPO / "programs" / layer / program["options"]["virtualenv"]).resolve() == venv
        # One values file per environment for both programs.
        assert (REPO / "programs" / layer / project["stackConfigDir"]).resolve() == (REPO / "stacks").resolve()
    assert not (REPO / "policies" / "pyproject.toml").exists()


# ---------------------------------------------------------------------- per-environment config


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_environment_config_loads_and_names_every_policy(env: str) -> None:
    config = load_config(REPO / "stacks" / f"policy.{env}.json")
    assert set(config) == {p.name for p in POLICIES}, "each environment decides every policy's level explicitly"
    resolve_config(POLICIES, config)  # schema-valid


def levels(env: str) -> dict[str, EnforcementLevel]:
    settings = resolve_config(POLICIES, load_config(REPO / "stacks" / f"policy.{env}.json"))
    return {name: s.enforcement for name, s in settings.items()}


def test_prod_is_mandatory_except_the_advisory_by_design() -> None:
    prod = levels("prod")
    assert {n for n, level in prod.items() if level is not EnforcementLevel.MANDATORY} == ADVISORY_BY_DESIGN
    assert all(prod[p.name] is p.enforcement_level for p in POLICIES), "prod runs every policy at its declared level"


def test_starred_policies_are_advisory_in_dev_and_mandatory_in_prod() -> None:
    dev, prod = levels("dev"), levels("prod")
    assert all(dev[n] is EnforcementLevel.ADVISORY and prod[n] is EnforcementLevel.MANDATORY for n in STARRED)


def test_lower_environments_never_exceed_prod() -> None:
    order = [EnforcementLevel.DISABLED, EnforcementLevel.ADVISORY, EnforcementLevel.MANDATORY]
    prod = levels("prod")
    for env in ("dev", "staging"):
        lower = levels(env)
        assert all(order.index(lower[n]) <= order.index(prod[n]) for n in prod), env


def test_protection_policies_follow_the_protection_defaults() -> None:
    """Protection is on by default only in prod (infra.config.ProtectionConfig), so only prod enforces it."""
    for env in ENVIRONMENTS:
        level = levels(env)["inf-stateful-protected"]
        assert (level is EnforcementLevel.MANDATORY) == (env == "prod")


def test_prod_requires_digests_and_forbids_bucket_lock() -> None:
    prod = json.loads((REPO / "stacks" / "policy.prod.json").read_text())
    assert prod["inf-k8s-image-pinned"]["requireDigest"] is True
    assert prod["inf-gcs-no-lock-outside-prod"]["allowBucketLock"] is False


def test_readme_catalogue_matches_the_pack_and_config_files() -> None:
    from policies import cost, gateway_autoscaling, gke_security, k8s_workloads, node_pools, stack_consistency, storage

    module = {
        p.name: m.__name__.rsplit(".", 1)[-1]
        for m in (gke_security, node_pools, storage, k8s_workloads, gateway_autoscaling, stack_consistency, cost)
        for p in m.POLICIES
    }
    per_env = {env: levels(env) for env in ENVIRONMENTS}
    expected = [
        [
            f"`{p.name}`",
            module[p.name],
            "stack" if isinstance(p, StackValidationPolicy) else "resource",
            p.severity.value if p.severity else "",
            p.framework.reference or "" if p.framework else "",
            *(per_env[env][p.name].value for env in ENVIRONMENTS),
        ]
        for p in POLICIES
    ]
    readme = (REPO / "policies" / "README.md").read_text().splitlines()
    rows = [[cell.strip() for cell in line.strip("|").split("|")] for line in readme if line.startswith("| `inf-")]
    assert rows[: len(expected)] == expected
