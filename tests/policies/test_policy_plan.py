"""`gke-inference plan` runs the pack: shipped stacks pass, broken stacks exit 1 naming the policy; runner fidelity."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner
from fixtures import captured, prod_capture, serving_stack
from pulumi_policy import PolicyResourceOptions, ResourceValidationArgs, ResourceValidationPolicy, StackValidationPolicy

from infra.catalog import load as load_catalog
from infra.tooling.cli import main
from infra.tooling.plan import StackFile, run
from infra.tooling.policy_runner import engine_props, load_config
from infra.tooling.policy_runner import run as run_pack
from policies.registry import POLICIES

REPO = Path(__file__).resolve().parents[2]
STACKS = REPO / "stacks"


def stack_config(env: str) -> dict[str, Any]:
    return yaml.safe_load((STACKS / f"Pulumi.{env}.yaml").read_text())["config"]


def plan(tmp_path: Path, config: dict[str, Any], name: str = "broken") -> tuple[int, str, dict[str, Any]]:
    path = tmp_path / f"Pulumi.{name}.yaml"
    path.write_text(yaml.safe_dump({"config": config}))
    out = tmp_path / "out"
    result = CliRunner().invoke(main, ["plan", "--stack-file", str(path), "--out", str(out)])
    summary_path = out / name / "summary.json"
    summary = json.loads(summary_path.read_text()) if summary_path.is_file() else {}
    return result.exit_code, result.output + result.stderr, summary


@pytest.fixture(scope="module")
def planned(tmp_path_factory: pytest.TempPathFactory) -> tuple[int, Path]:
    out = tmp_path_factory.mktemp("plan")
    result = CliRunner().invoke(main, ["plan", "--out", str(out), "--stacks-dir", str(STACKS)])
    return result.exit_code, out


def test_shipped_stacks_plan_with_zero_mandatory_violations(planned: tuple[int, Path]) -> None:
    code, out = planned
    assert code == 0
    for env in ("dev", "staging", "prod"):
        policies = json.loads((out / env / "summary.json").read_text())["policies"]
        assert policies["ran"] is True and policies["config"] == f"policy.{env}.json"
        assert policies["mandatory"] == 0
    assert json.loads((out / "prod" / "summary.json").read_text())["policies"]["violations"] == []


def test_report_has_a_policies_section(planned: tuple[int, Path]) -> None:
    _, out = planned
    report = (out / "dev" / "report.md").read_text()
    summary = json.loads((out / "dev" / "summary.json").read_text())["policies"]
    assert "## Policies" in report
    assert f"{len(summary['violations'])} violation(s), 0 mandatory" in report
    for violation in summary["violations"]:  # dev: the advisory KMS finding is shown to the reviewer
        assert violation["enforcement"] == "advisory" and violation["policy"] in report


def _accelerator_machine(machine_type: str) -> bool:
    catalog = load_catalog()
    return any(machine_type in g.machine_types for g in (*catalog.tpus.values(), *catalog.gpus.values()))


def test_unprotected_prod_exits_1_naming_the_protection_policies(tmp_path: Path, planned: tuple[int, Path]) -> None:
    config = {
        **stack_config("prod"),
        "gke-inference:protection": {"protect": False, "deletion_protection": False, "retain_on_delete": False},
    }
    code, output, summary = plan(tmp_path, config)
    assert code == 1
    shipped = json.loads((planned[1] / "prod" / "summary.json").read_text())["policies"]["violations"]
    already = {(v["policy"], v["resource"]) for v in shipped}
    new = {
        (v["policy"], v["resource"], v["message"])
        for v in summary["policies"]["violations"]
        if v["enforcement"] == "mandatory" and (v["policy"], v["resource"]) not in already
    }
    assert {policy for policy, _, _ in new} == {"inf-gke-deletion-protected", "inf-stateful-protected"}
    assert {(p, m) for p, _, m in new if p == "inf-gke-deletion-protected"} == {
        ("inf-gke-deletion-protected", "deletionProtection is false"),
        (
            "inf-gke-deletion-protected",
            "the Pulumi protect option is off: a replacing change would delete the cluster and every workload on it",
        ),
    }
    # Every stateful resource the program registers is named: cluster, accelerator pools, buckets, proxy-only subnet.
    resources = json.loads((tmp_path / "out" / "broken" / "resources.json").read_text())
    stateful = {
        f"{r['type']}: {r['name']}"
        for r in resources
        if r["type"] in ("gcp:container/cluster:Cluster", "gcp:storage/bucket:Bucket", "gcp:kms/cryptoKey:CryptoKey")
        or (r["type"] == "gcp:compute/subnetwork:Subnetwork" and r["inputs"].get("purpose") == "REGIONAL_MANAGED_PROXY")
        or (r["type"] == "gcp:container/nodePool:NodePool" and _accelerator_machine(r["inputs"]["nodeConfig"]["machineType"]))
    }
    flagged = {res for p, res, _ in new if p == "inf-stateful-protected"} | {
        res for p, res in already if p == "inf-stateful-protected"
    }
    assert flagged == stateful
    assert "gcp:compute/subnetwork:Subnetwork: network-proxy-only" in flagged
    assert "[mandatory]  inf-gke-deletion-protected  (gcp:container/cluster:Cluster: cluster-gke)" in output


def test_budget_far_below_the_cost_exits_1_naming_the_cost_policy(tmp_path: Path) -> None:
    code, output, summary = plan(tmp_path, {**stack_config("prod"), "gke-inference:budget": {"monthly_usd": 100}})
    assert code == 1
    [violation] = [v for v in summary["policies"]["violations"] if v["policy"] == "inf-stack-cost-budget"]
    assert (
        violation["enforcement"] == "mandatory" and violation["resource"] == "pulumi:pulumi:Stack: gke-inference-platform-broken"
    )
    assert "exceeds the budget of 100 USD (gke-inference:budget)" in violation["message"]
    assert "inf-stack-cost-budget" in output


def test_invalid_config_still_exits_2_first(tmp_path: Path) -> None:
    config = {**stack_config("prod"), "gke-inference:protection": {"protect": False}, "gke-inference:cluster": {"nme": "x"}}
    code, output, summary = plan(tmp_path, config)
    assert code == 2 and summary == {}
    assert "gke-inference:cluster.nme: unknown key" in output


def test_policy_config_beside_the_stack_file_is_used_and_checked(tmp_path: Path) -> None:
    (tmp_path / "policy.prod.json").write_text(json.dumps({"inf-gke-private-nodes": {"excludeFr": ["x"]}}))
    code, output, _ = plan(tmp_path, stack_config("prod"))
    assert code == 2
    assert "inf-gke-private-nodes: Additional properties are not allowed ('excludeFr' was unexpected)" in output


def test_dev_config_keeps_advisory_findings_advisory(tmp_path: Path) -> None:
    code, _, summary = plan(tmp_path, stack_config("dev"), name="dev2")
    assert code == 0
    found = {(v["policy"], v["enforcement"]) for v in summary["policies"]["violations"]}
    assert ("inf-gke-secrets-kms", "advisory") in found  # dev configures no secrets key
    assert {level for _, level in found} == {"advisory"}


# ------------------------------------------------------------------------------- runner fidelity


def test_numbers_reach_policies_as_floats_like_from_the_engine() -> None:
    props = engine_props({"spec": {"minReplicas": 5, "ratio": 0.5}})
    assert props["spec"]["minReplicas"] == 5.0 and isinstance(props["spec"]["minReplicas"], float)


def test_a_policy_reading_an_unknown_value_is_downgraded_to_advisory() -> None:
    def strict(args: ResourceValidationArgs, report: Any) -> None:
        if args.props["nodeConfig"]["serviceAccount"].endswith("compute@developer.gserviceaccount.com"):
            report("default SA", None)

    policy = ResourceValidationPolicy("strict-probe", "Reads an Output-valued field directly.", validate=strict)
    pool = captured("gcp:container/nodePool:NodePool", "p", {"nodeConfig": {"serviceAccount": "[unknown]"}})
    [found] = run_pack([pool], [policy], {"strict-probe": "mandatory"})
    assert found.enforcement == "advisory"
    assert (
        found.message
        == "can't run policy 'strict-probe' during preview: string value at .nodeConfig.serviceAccount can't be known during preview"
    )


def test_stack_policies_see_parents_and_property_dependencies() -> None:
    seen: dict[str, Any] = {}

    def probe(args: Any, report: Any) -> None:
        pool = next(r for r in args.resources if r.name == "cluster-system")
        seen["parent"] = pool.parent.resource_type
        seen["deps"] = sorted(r.resource_type for r in pool.property_dependencies["nodeConfig"])
        seen["opts"] = isinstance(pool.opts, PolicyResourceOptions)

    run_pack(prod_capture().resources, [StackValidationPolicy("probe", "Records what it sees.", validate=probe)], {})
    assert seen == {"parent": "gke-inference:cluster:Cluster", "deps": ["gcp:serviceaccount/account:Account"], "opts": True}


def test_pack_runs_over_the_largest_stack_well_under_a_second() -> None:
    """The real measurement is benchmarks/policy_time.py; this guards against an accidental blow-up."""
    captures = {p.name: run(StackFile.read(p)) for p in sorted(STACKS.glob("Pulumi.*.yaml"))}
    largest = max(captures.values(), key=lambda c: len(c.resources))
    resources = serving_stack(largest.resources)
    config = load_config(STACKS / f"policy.{largest.config.environment}.json")
    run_pack(resources, POLICIES, config)  # warm the catalog cache
    start = time.perf_counter()
    run_pack(resources, POLICIES, config)
    assert time.perf_counter() - start < 1.0
