"""Platform and serving as two stacks per environment, joined by a StackReference: who owns what, the contract, and a
change to one layer leaving the other's plan untouched."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pulumi
import pytest
import yaml
from click.testing import CliRunner
from conftest import STACKS
from test_diff import plan_into

from infra import contract
from infra.serving.stack import check_platform, expected
from infra.tooling import migration
from infra.tooling.cli import main
from infra.tooling.plan import StackFile, execute, run

NS = "gke-inference"
PLATFORM_ONLY = frozenset(
    {
        "gcp:container/cluster:Cluster",
        "gcp:container/nodePool:NodePool",
        "gcp:storage/bucket:Bucket",
        "gcp:compute/network:Network",
        "kubernetes:helm.sh/v4:Chart",
        "kubernetes:cloud.google.com/v1:ComputeClass",
        "kubernetes:apiregistration.k8s.io/v1:APIService",
    }
)
"""Kinds only the platform stack may hold: a serving change can never touch them."""


def layer_view(plan: Path, layer: str) -> list[dict[str, Any]]:
    return json.loads((plan / layer / "resources.json").read_text())


def prod_config() -> dict[str, Any]:
    return yaml.safe_load((STACKS / "Pulumi.prod.yaml").read_text())["config"]


@pytest.fixture(scope="module")
def prod(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return plan_into(tmp_path_factory.mktemp("prod"), "base", prod_config())


def test_the_union_view_holds_two_stacks_and_the_serving_one_reads_the_platform(prod: Path) -> None:
    union = json.loads((prod / "resources.json").read_text())
    layers = {layer: layer_view(prod, layer) for layer in ("platform", "serving")}
    assert sorted(r["urn"] for r in union) == sorted(r["urn"] for rs in layers.values() for r in rs)
    for layer, resources in layers.items():
        assert {r["layer"] for r in resources} == {layer}
        assert {r["urn"].split("::")[1] for r in resources} == {f"gke-inference-{layer}"}
    serving_types = {r["type"] for r in layers["serving"]}
    assert "pulumi:pulumi:StackReference" in serving_types
    assert not serving_types & PLATFORM_ONLY
    assert PLATFORM_ONLY - {"kubernetes:apiregistration.k8s.io/v1:APIService"} <= {r["type"] for r in layers["platform"]}
    [reference] = [r for r in layers["serving"] if r["type"] == "pulumi:pulumi:StackReference"]
    assert reference["inputs"] == {"name": "organization/gke-inference-platform/prod"}
    # The serving namespaces and their accounts are the platform's (their bucket IAM needs them); the servers' own
    # objects are the serving stack's.
    kinds = {(r["layer"], r["type"].rsplit(":", 1)[1]) for r in union}
    assert {
        ("platform", "Namespace"),
        ("platform", "ServiceAccount"),
        ("serving", "LeaderWorkerSet"),
        ("serving", "Deployment"),
    } <= kinds
    # Every namespace a server runs in is the platform's; the serving stack holds only the Gateway's own.
    served = {w.config.namespace for w in StackFile.read(STACKS / "Pulumi.prod.yaml").load().workloads.values()}
    namespaces = {(r["layer"], r["inputs"]["metadata"]["name"]) for r in union if r["type"] == "kubernetes:core/v1:Namespace"}
    assert {("platform", ns) for ns in served} <= namespaces and {n for layer, n in namespaces if layer == "serving"} == {
        "inference-gateway"
    }


def test_the_platform_exports_exactly_the_contract_and_it_reads_back(prod: Path) -> None:
    outputs = json.loads((prod / "platform" / "outputs.json").read_text())
    assert tuple(sorted(outputs)) == tuple(sorted(contract.OUTPUTS))
    assert outputs["contract_version"] == contract.VERSION and outputs["kubeconfig"] == "[secret]"
    cfg = StackFile.read(STACKS / "Pulumi.prod.yaml").load()
    check_platform(cfg, {k: outputs[k] for k in ("node_pools", "compute_classes", "namespaces")})  # what it expects


def test_a_missing_or_extra_output_is_refused() -> None:
    values = {name: "x" for name in contract.OUTPUTS if name != "contract_version"}
    assert set(contract.exports(values)) == set(contract.OUTPUTS)
    with pytest.raises(ValueError, match="missing \\['subnetwork'\\]"):
        contract.exports({k: v for k, v in values.items() if k != "subnetwork"})
    with pytest.raises(ValueError, match="unexpected \\['extra'\\]"):
        contract.exports({**values, "extra": "x"})


def test_serving_refuses_a_platform_deployed_from_another_configuration() -> None:
    cfg = StackFile.read(STACKS / "Pulumi.prod.yaml").load()
    found = {name: contract.as_json(value) for name, value in expected(cfg).items()}  # type: ignore[arg-type]
    check_platform(cfg, found)
    pools = json.loads(found["node_pools"])
    found["node_pools"] = contract.as_json({k: v for k, v in pools.items() if k != "h100"})
    with pytest.raises(pulumi.RunError, match="deploy the platform stack first"):
        check_platform(cfg, found)


def test_a_serving_change_leaves_the_platform_plan_untouched(prod: Path, tmp_path: Path) -> None:
    """One vLLM flag (gemma-9b's --max-num-seqs): the serving plan changes, the platform plan does not."""
    config = copy.deepcopy(prod_config())
    config[f"{NS}:workloads"]["gemma-9b"]["max_num_seqs"] = 6
    head = plan_into(tmp_path, "head", config)
    assert layer_view(head, "platform") == layer_view(prod, "platform")
    assert layer_view(head, "serving") != layer_view(prod, "serving")
    assert "--max-num-seqs=6" in (head / "serving" / "manifests" / "Deployment_inference_gemma-9b.yaml").read_text()


def test_a_platform_change_leaves_the_serving_plan_untouched(prod: Path, tmp_path: Path) -> None:
    """A maintenance window: the platform plan changes (the cluster), the serving plan does not."""
    config = copy.deepcopy(prod_config())
    config[f"{NS}:cluster"]["maintenance_window"] = {"start_time": "2026-01-03T04:00:00Z", "end_time": "2026-01-03T10:00:00Z"}
    head = plan_into(tmp_path, "head", config)
    assert layer_view(head, "serving") == layer_view(prod, "serving")
    assert layer_view(head, "platform") != layer_view(prod, "platform")


def test_the_serving_layer_plans_alone_against_a_saved_platform_plan(tmp_path: Path) -> None:
    stack = str(STACKS / "Pulumi.staging.yaml")
    out = tmp_path / "out"
    refused = CliRunner().invoke(main, ["plan", "--stack-file", stack, "--out", str(out), "--layer", "serving"])
    assert refused.exit_code == 2 and "plan the platform layer first" in refused.output
    assert CliRunner().invoke(main, ["plan", "--stack-file", stack, "--out", str(out), "--layer", "platform"]).exit_code == 0
    alone = CliRunner().invoke(main, ["plan", "--stack-file", stack, "--out", str(out), "--layer", "serving"])
    assert alone.exit_code == 0, alone.output  # the policies joining servers to pools read the saved platform plan
    assert {r["layer"] for r in json.loads((out / "staging" / "resources.json").read_text())} == {"serving"}
    assert (out / "staging" / "platform" / "resources.json").is_file()


def test_each_program_runs_alone_as_its_own_project() -> None:
    monitor = execute(StackFile.read(STACKS / "Pulumi.dev.yaml"), layer="platform")
    assert {r.urn.split("::")[1] for r in monitor.captured} == {"gke-inference-platform"}
    assert tuple(sorted(monitor.stack_outputs)) == tuple(sorted(contract.OUTPUTS))


def test_a_pull_request_previews_the_stacks_its_plan_changes(prod: Path, tmp_path: Path) -> None:
    config = copy.deepcopy(prod_config())
    config[f"{NS}:workloads"]["gemma-9b"]["max_num_seqs"] = 6
    serving_only = plan_into(tmp_path, "serving", config)
    assert CliRunner().invoke(main, ["changed", str(prod), str(serving_only)]).output.split() == ["serving"]
    assert CliRunner().invoke(main, ["changed", str(prod), str(prod)]).output.split() == []
    assert CliRunner().invoke(main, ["changed", str(tmp_path / "none"), str(prod)]).output.split() == ["platform", "serving"]


def test_the_migration_moves_every_resource_of_the_old_stack_once() -> None:
    """Each resource both programs register (but their roots, providers and the StackReference) is moved from the old
    single stack exactly once, into the stack whose plan holds it; the old URN is the new one under the old project."""
    capture = run(StackFile.read(STACKS / "Pulumi.prod.yaml"))
    moved = migration.moves(capture.resources)
    every = [u for urns in moved.values() for u in urns]
    assert len(every) == len(set(every))  # none twice
    for layer in ("platform", "serving"):
        expected_urns = {
            migration.old_urn(r.urn) for r in capture.resources if r.layer == layer and not r.type.startswith(migration.NOT_MOVED)
        }
        assert set(moved[layer]) == expected_urns  # none dropped
    assert all(moved.values())  # both layers hold resources
    assert all("::gke-inference::" in u for u in every)
    commands = CliRunner().invoke(main, ["migration", "prod"]).output.splitlines()
    assert [c.split(" && ")[0] for c in commands] == ["(cd programs/platform", "(cd programs/serving"]
    assert "--source organization/gke-inference/prod --dest organization/gke-inference-serving/prod" in commands[1]
