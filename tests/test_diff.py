"""What `pulumi up` will do between two plans: replace, update, create or delete per resource, and the changes it
would refuse or break (infra/tooling/replacements.py, infra/catalog/replacements.yaml, `diff` and `plan --base`)."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner
from conftest import STACKS
from model_serving_helpers import TEST_STACK_FILE

from infra.tooling.cli import main
from infra.tooling.diff import Plan, changes, flatten
from infra.tooling.plan import StackFile, run
from infra.tooling.replacements import classify, has_rule, rule_for

NS = "gke-inference"
NODE_POOL = "gcp:container/nodePool:NodePool"


def stack_config(env: str) -> dict[str, Any]:
    return yaml.safe_load((STACKS / f"Pulumi.{env}.yaml").read_text())["config"]


def plan_into(tmp: Path, name: str, config: dict[str, Any], stack: str = "prod") -> Path:
    """Plan a stack file holding `config` into tmp/name/STACK; the plan folder."""
    folder = tmp / name
    folder.mkdir()
    path = folder / f"Pulumi.{stack}.yaml"
    kms = f"gcpkms://projects/{config['gcp:project']}/locations/us-east5/keyRings/pulumi/cryptoKeys/{stack}"
    path.write_text(yaml.safe_dump({"secretsprovider": kms, "config": config}))  # as a staging or prod stack needs
    result = CliRunner().invoke(main, ["plan", "--stack-file", str(path), "--out", str(folder / "out")])
    assert result.exit_code == 0, result.output
    return folder / "out" / stack


def four_by_eight(config: dict[str, Any]) -> dict[str, Any]:
    """prod's 405B slice pools grown from 4x4 to 4x8 (budget and auto-provisioning ceilings raised for the bigger
    slices, so nothing but `up` stands in the way)."""
    out = copy.deepcopy(config)
    out[f"{NS}:tpu_pools"]["v6e-4x4"]["topology"] = "4x8"
    out[f"{NS}:budget"] = {"monthly_usd": 400_000}
    out[f"{NS}:cluster"]["node_auto_provisioning"] = {"cpu_max": 5000, "memory_max_gb": 20_000}
    return out


@pytest.fixture(scope="module")
def prod_4x8(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    tmp = tmp_path_factory.mktemp("prod-4x8")
    base = stack_config("prod")
    base[f"{NS}:budget"] = {"monthly_usd": 400_000}
    return plan_into(tmp, "base", base), plan_into(tmp, "head", four_by_eight(base))


def test_prod_4x4_to_4x8_is_a_protected_replacement_naming_the_field(prod_4x8: tuple[Path, Path]) -> None:
    base, head = prod_4x8
    result = CliRunner().invoke(main, ["diff", str(base), str(head)])
    assert result.exit_code == 1, result.output
    found = {c.key: c for c in changes(Plan.load(base), Plan.load(head))}
    pools = {k: c for k, c in found.items() if c.type == NODE_POOL and c.action == "replace"}
    assert {k.rsplit("::", 1)[1] for k in pools} == {"v6e-4x4-0", "v6e-4x4-1"}
    for key, change in pools.items():
        assert list(change.forcing) == ["placementPolicy.tpuTopology"]
        assert f"{key}: protected, and placementPolicy.tpuTopology forces a replacement (pulumi up refuses)" in result.output
        # The cost: the slice's 4 VMs x 4 chips drained, away for the catalog's TPU provisioning time.
        assert change.notes == [
            "drains up to 4 ct6e-standard-4t node(s) (16 TPU chips); that capacity is away for about 10 min of "
            "provisioning (tpu) plus the workloads' start"
        ]
    # The pools delete the old slice first: no collision on their fixed names, only the protection stops `up`.
    assert "collides" not in result.output


def test_the_same_change_unprotected_in_dev_is_a_replacement_that_proceeds(tmp_path: Path) -> None:
    base_config = stack_config("prod")
    base_config[f"{NS}:environment"] = "dev"
    # dev's policy configuration refuses the disaggregated server's capabilities: that workload stays out.
    del base_config[f"{NS}:workloads"]["llama2-70b"]
    base_config[f"{NS}:budget"] = {"monthly_usd": 400_000}
    base = plan_into(tmp_path, "base", base_config)
    head = plan_into(tmp_path, "head", four_by_eight(base_config))
    result = CliRunner().invoke(
        main,
        [
            "plan",
            "--stack-file",
            str(tmp_path / "head" / "Pulumi.prod.yaml"),
            "--out",
            str(tmp_path / "again"),
            "--base",
            str(base.parent),
        ],
    )
    assert result.exit_code == 0, result.output
    # Updated beside the pool: the cluster's NAP limits, the compute class, the HPA and LWS, and the 405B alerts whose
    # durations follow its start time on the new slice.
    assert "0 to create, 6 to update, 2 to replace, 0 to delete" in result.output
    report = (tmp_path / "again" / "prod" / "diff.md").read_text()
    assert "## Replace" in report and "placementPolicy.tpuTopology (replaces)" in report and "Errors" not in report
    assert CliRunner().invoke(main, ["diff", str(base), str(head)]).exit_code == 0


def test_plan_base_fails_on_the_protected_replacement(prod_4x8: tuple[Path, Path], tmp_path: Path) -> None:
    base, head = prod_4x8
    stack_file = head.parent.parent / "Pulumi.prod.yaml"
    result = CliRunner().invoke(
        main, ["plan", "--stack-file", str(stack_file), "--out", str(tmp_path), "--base", str(base.parent)]
    )
    assert result.exit_code == 1
    assert "prod: pulumi up would fail:" in result.output and (tmp_path / "prod" / "diff.md").is_file()


# ------------------------------------------------------------------------------------------------ the table


def registered_types() -> set[str]:
    types = {r.as_json()["type"] for r in run(TEST_STACK_FILE).resources}
    for env in ("dev", "staging", "prod"):
        types |= {r.as_json()["type"] for r in run(StackFile.read(STACKS / f"Pulumi.{env}.yaml")).resources}
    return types


def test_every_registered_type_has_a_replacement_rule() -> None:
    missing = sorted(t for t in registered_types() if not has_rule(t))
    assert missing == []


def test_the_rules_read_both_naming_schemes() -> None:
    """Terraform's snake_case (and singular list blocks) against Pulumi's camelCase inputs (plural lists)."""
    pool = rule_for(NODE_POOL)
    assert pool is not None
    assert pool.forcing("placementPolicy.tpuTopology") == "placement_policy"
    assert pool.forcing("nodeConfig.guestAccelerators[0].count") == "node_config.guest_accelerator"
    assert pool.forcing("nodeConfig.serviceAccount") == "node_config.service_account"
    assert pool.forcing("nodeConfig.machineType") is None  # resized in place since the provider's v6
    assert pool.forcing("autoscaling.maxNodeCount") is None
    deployment = rule_for("kubernetes:apps/v1:Deployment")
    assert deployment is not None
    assert deployment.forcing("spec.selector.matchLabels.app") == "spec.selector"
    assert deployment.forcing("spec.template.spec.containers[name=vllm].image") is None
    assert deployment.forcing("metadata.name") == "metadata.name"


def record(inputs: dict[str, Any], **options: Any) -> dict[str, Any]:
    return {
        "inputs": inputs,
        "options": {"protect": False, "deleteBeforeReplace": False, "ignoreChanges": [], "replaceOnChanges": [], **options},
    }


def test_a_replacement_keeping_its_name_collides_unless_the_old_one_goes_first() -> None:
    old = {"name": "models", "location": "US"}
    new = {"name": "models", "location": "EU"}
    paths = [("location", "US", "EU")]
    bucket = "gcp:storage/bucket:Bucket"
    collides = classify("b", bucket, record(old), record(new), paths)
    assert collides is not None and collides.action == "replace"
    assert [p for p in collides.problems if "collides" in p]
    first = classify("b", bucket, record(old), record(new, deleteBeforeReplace=True), paths)
    assert first is not None and first.action == "replace" and first.problems == []
    renamed = classify("b", bucket, record(old), record({**new, "name": "models-eu"}), [*paths, ("name", "models", "models-eu")])
    assert renamed is not None and renamed.problems == []


def test_protection_stops_a_replacement_and_a_deletion_but_not_an_update() -> None:
    pool = {"name": "p", "placementPolicy": {"tpuTopology": "4x4"}, "autoscaling": {"maxNodeCount": 4}}
    grown = {**pool, "autoscaling": {"maxNodeCount": 8}}
    update = classify(
        "p", NODE_POOL, record(pool, protect=True), record(grown, protect=True), [("autoscaling.maxNodeCount", 4, 8)]
    )
    assert update is not None and (update.action, update.problems) == ("update", [])
    deleted = classify("p", NODE_POOL, record(pool, protect=True), None, [])
    assert deleted is not None and deleted.action == "delete" and "protected" in deleted.problems[0]
    created = classify("p", NODE_POOL, None, record(pool), [])
    assert created is not None and (created.action, created.problems) == ("create", [])


def test_ignored_changes_are_no_changes() -> None:
    pool = record({"name": "p", "initialNodeCount": 1}, ignoreChanges=["initialNodeCount"])
    assert classify("p", NODE_POOL, pool, pool, [("initialNodeCount", 1, 2)]) is None


def test_a_change_the_lws_webhook_refuses_is_an_error_unless_it_replaces_the_set() -> None:
    lws = "kubernetes:leaderworkerset.x-k8s.io/v1:LeaderWorkerSet"
    paths = [("spec.leaderWorkerTemplate.subGroupPolicy.subGroupSize", 2, 4)]
    refused = classify("l", lws, record({}), record({}), paths)
    assert refused is not None and refused.action == "update" and "cannot change in place" in refused.problems[0]
    replaced = classify("l", lws, record({}), record({}, replaceOnChanges=["spec.leaderWorkerTemplate.subGroupPolicy"]), paths)
    assert replaced is not None and (replaced.action, replaced.problems) == ("replace", [])


def test_rendered_objects_replace_without_colliding_where_the_config_can_force_it(prod_4x8: tuple[Path, Path]) -> None:
    """Accelerator pools and Triton's repository objects delete the old one first (same name); the disaggregated LWS
    replaces itself when its subgroups change; every one of them as rendered."""
    records = Plan.load(prod_4x8[0]).resources
    pools = [r for r in records.values() if r["type"] == NODE_POOL and r["inputs"]["name"] != "system"]
    assert pools and all(r["options"]["deleteBeforeReplace"] for r in pools)
    lws = [r for r in records.values() if r["type"].endswith(":LeaderWorkerSet")]
    assert lws and all("spec.leaderWorkerTemplate.subGroupPolicy" in r["options"]["replaceOnChanges"] for r in lws)
    staging = run(StackFile.read(STACKS / "Pulumi.staging.yaml"))
    objects = [r.as_json() for r in staging.resources if r.as_json()["type"] == "gcp:storage/bucketObject:BucketObject"]
    assert objects
    for obj in objects:
        change = classify("o", obj["type"], obj, obj, [("source", "a", "b")])
        assert change is not None and (change.action, change.problems) == ("replace", [])


# ------------------------------------------------------------------------------------------------ readability


def test_list_elements_are_matched_by_name_not_position() -> None:
    a = {"containers": [{"name": "a", "image": "x"}, {"name": "b", "image": "y"}]}
    b = {"containers": [{"name": "b", "image": "y"}, {"name": "a", "image": "z"}]}
    fa, fb = flatten(a), flatten(b)
    assert {p for p in fa.keys() | fb.keys() if fa.get(p) != fb.get(p)} == {"containers[name=a].image"}


def test_one_changed_argument_is_shown_by_itself(tmp_path: Path) -> None:
    config = stack_config("staging")
    head = copy.deepcopy(config)
    head[f"{NS}:workloads"]["gemma-9b"]["max_context"] = 2048
    base_dir, head_dir = plan_into(tmp_path, "a", config, "staging"), plan_into(tmp_path, "b", head, "staging")
    report = CliRunner().invoke(main, ["diff", str(base_dir), str(head_dir)]).output
    assert "- --max-model-len=4096" in report and "+ --max-model-len=2048" in report
    assert f"staging ({base_dir})" in report and f"staging ({head_dir})" in report  # two plans of one stack told apart


def test_environment_names_are_neutral_in_keys_and_values(tmp_path: Path) -> None:
    plan = Plan.load(plan_into(tmp_path, "p", stack_config("staging"), "staging"))
    rendered = json.dumps({k: plan.neutral(r["inputs"]) for k, r in plan.resources.items()})
    s = plan.summary
    assert all(name not in rendered for name in (s["project"], s["prefix"]))
    assert plan.neutral({"inference-staging-x": "staging"}) == {"<prefix>-x": "<env>"}
    assert plan.neutral("stagingly") == "stagingly"  # a whole name only
