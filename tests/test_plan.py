"""`gke-inference plan`/`diff`: the real program under mocks, its outputs, exit codes, determinism."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pulumi
import pytest
import yaml
from click.testing import CliRunner
from conftest import BASE, ENVIRONMENTS, STACKS, mutate
from model_serving_helpers import TEST_STACK, Stack

from components.identity import NODE_SA_ROLES
from infra.names import node_account_id, pathways_account_id, stack_prefix
from infra.tooling.cli import main
from infra.tooling.plan import SECRET, CapturingMonitor, FakeCloud, StackFile, execute, plain
from infra.tooling.render import REFERENCE_TYPES


@pytest.fixture(scope="session")
def planned(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("plan")
    result = CliRunner().invoke(main, ["plan", "--out", str(out), "--stacks-dir", str(STACKS)])
    assert result.exit_code == 0, result.output
    return out


def resources(planned: Path, env: str) -> list[dict[str, Any]]:
    return json.loads((planned / env / "resources.json").read_text())


def one(items: list[dict[str, Any]], type_: str, name: str | None = None) -> dict[str, Any]:
    found = [r for r in items if r["type"] == type_ and (name is None or r["name"] == name)]
    assert len(found) == 1, [r["name"] for r in found]
    return found[0]


def write_stack(tmp: Path, name: str, config: dict[str, Any]) -> Path:
    path = tmp / f"Pulumi.{name}.yaml"
    path.write_text(yaml.safe_dump({"config": config}))
    return path


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_plan_writes_every_artifact(planned: Path, env: str) -> None:
    folder = planned / env
    assert {p.name for p in folder.iterdir()} == {
        "resources.json",
        "manifests",
        "summary.json",
        "report.md",
        "platform",
        "serving",
    }
    for layer in ("platform", "serving"):
        assert {p.name for p in (folder / layer).iterdir()} == {"resources.json", "manifests", "outputs.json"}
    for r in resources(planned, env):
        assert set(r) >= {"urn", "layer", "type", "name", "parent", "dependencies", "inputs", "options"}
        assert set(r["options"]) >= {"protect", "retainOnDelete", "deleteBeforeReplace", "ignoreChanges"}
    summary = json.loads((folder / "summary.json").read_text())
    assert summary["resources"]["total"] == len(resources(planned, env))
    assert "```mermaid" in (folder / "report.md").read_text()


PROVIDERS = {"platform": {"gcp", "gcp-bootstrap", "k8s"}, "serving": {"gcp", "k8s"}}
"""Each layer's explicit providers: every resource of a layer goes through one of its own."""


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_children_are_parented_to_and_named_after_their_component(planned: Path, env: str) -> None:
    assert_parented_and_provided(resources(planned, env))


def test_the_model_serving_test_stacks_children_too(stacks: dict[str, Stack]) -> None:
    """It has what no shipped stack has: the download Jobs, Hyperdisk ML weights, a multi-node server."""
    assert_parented_and_provided(stacks[TEST_STACK].items)


def assert_parented_and_provided(items: list[dict[str, Any]]) -> None:
    by_urn = {r["urn"]: r for r in items}
    for r in items:
        assert r["parent"] is None or r["parent"] in by_urn
        assert all(d in by_urn for d in r["dependencies"])
        if r["custom"] and not r["type"].startswith(("pulumi:providers:", "pulumi:pulumi:StackReference")):
            parent = by_urn[r["parent"]]
            assert parent["type"].startswith("gke-inference:"), r["urn"]
            assert r["name"].startswith(parent["name"]), (r["name"], parent["name"])
            assert r["provider"] is not None and r["provider"].split("::")[-1] in PROVIDERS[r["layer"]]


def test_nodes_run_as_the_dedicated_least_privilege_account(planned: Path) -> None:
    """prod: every pool runs as the general node account but the four TPU node pools serving Pathways, which run as
    the Pathways node account; both accounts hold exactly GKE's node role and image pulls at project level."""
    items = resources(planned, "prod")
    cfg = StackFile.read(STACKS / "Pulumi.prod.yaml").load()
    email, pathways = (
        f"{account(stack_prefix(cfg))}@{cfg.project}.iam.gserviceaccount.com"
        for account in (node_account_id, pathways_account_id)
    )
    cluster = one(items, "gcp:container/cluster:Cluster")
    assert cluster["inputs"]["clusterAutoscaling"]["autoProvisioningDefaults"]["serviceAccount"] == email
    pools = {
        r["name"]: r["inputs"]["nodeConfig"]["serviceAccount"] for r in items if r["type"] == "gcp:container/nodePool:NodePool"
    }
    served = {f"v6e-4x4-{i}" for i in range(2)} | {f"v6e-2x4-{i}" for i in range(2)}
    assert len(pools) == 7 and pools == {n: pathways if n in served else email for n in pools}
    assert all(
        r["inputs"]["cluster"] == cluster["inputs"]["name"] for r in items if r["type"] == "gcp:container/nodePool:NodePool"
    )
    members = [r["inputs"] for r in items if r["type"] == "gcp:projects/iAMMember:IAMMember"]
    accounts = [m for m in members if m["member"].startswith("serviceAccount:")]
    for account in (email, pathways):
        assert sorted(m["role"] for m in accounts if m["member"] == f"serviceAccount:{account}") == sorted(NODE_SA_ROLES)
    assert {m["member"] for m in accounts} == {f"serviceAccount:{email}", f"serviceAccount:{pathways}"}
    # The only other project grant: the metrics adapter's own principal may read Cloud Monitoring, nothing else.
    others = [m for m in members if m not in accounts]
    assert [(m["role"], m["member"].rsplit("/subject/", 1)[-1]) for m in others] == [
        ("roles/monitoring.viewer", "ns/custom-metrics/sa/custom-metrics-stackdriver-adapter")
    ]


def test_nap_accelerator_limits_are_derived_from_pools(planned: Path) -> None:
    limits = {
        lim["resourceType"]: lim["maximum"]
        for lim in one(resources(planned, "prod"), "gcp:container/cluster:Cluster")["inputs"]["clusterAutoscaling"][
            "resourceLimits"
        ]
    }
    # prod: two 4x4 (16 chips each) + two 2x4 (8 chips each); 2 a3-highgpu-8g; 3 g2-standard-24 (2 L4) in 2 zones.
    assert limits["tpu-v6e-slice"] == 2 * 16 + 2 * 8
    assert limits["nvidia-h100-80gb"] == 2 * 8
    assert limits["nvidia-l4"] == 3 * 2 * 2


@pytest.mark.parametrize(("env", "protected"), [("dev", False), ("staging", False), ("prod", True)])
def test_cluster_protection_follows_environment(planned: Path, env: str, protected: bool) -> None:
    cluster = one(resources(planned, env), "gcp:container/cluster:Cluster")
    assert cluster["options"]["protect"] is protected
    assert cluster["inputs"]["deletionProtection"] is protected


def test_cluster_security_baseline(planned: Path) -> None:
    c = one(resources(planned, "dev"), "gcp:container/cluster:Cluster")["inputs"]
    assert c["privateClusterConfig"]["enablePrivateNodes"] is True
    assert c["workloadIdentityConfig"]["workloadPool"] == "acme-inference-dev.svc.id.goog"
    assert c["datapathProvider"] == "ADVANCED_DATAPATH"
    assert c["gatewayApiConfig"]["channel"] == "CHANNEL_STANDARD"
    assert c["monitoringConfig"]["managedPrometheus"]["enabled"] is True
    assert c["nodePoolDefaults"]["nodeConfigDefaults"]["gcfsConfig"]["enabled"] is True
    assert c["removeDefaultNodePool"] is True
    assert "0.0.0.0/0" not in json.dumps(c["masterAuthorizedNetworksConfig"])


def test_workload_fit_in_summary_matches_seed(planned: Path) -> None:
    summary = json.loads((planned / "prod" / "summary.json").read_text())
    w = {x["name"]: x for x in summary["workloads"]}["llama-405b"]
    assert w["shape"] == "v6e 4x4" and w["fits"] and 1.03 < w["ratio"] < 1.12
    assert w["derived"]["lws_size"] == 5 and w["derived"]["google_com_tpu_per_worker"] == 4
    assert w["derived"]["pathways_instance_type"] == "tpuv6e:4x4"


def test_cost_totals_add_up(planned: Path) -> None:
    cost = json.loads((planned / "prod" / "summary.json").read_text())["cost"]
    assert cost["hourly_max"] == pytest.approx(sum(line["hourly_max"] for line in cost["lines"]), abs=0.01)
    assert cost["monthly_max"] == pytest.approx(cost["hourly_max"] * 730, abs=0.01)
    tpu = {line["item"]: line for line in cost["lines"]}["tpu_pools.v6e-4x4"]
    assert (tpu["max_units"], tpu["unit_price"]) == (2 * 16, 2.70)  # reservation billed at the on-demand rate


def test_plan_is_byte_identical_across_runs(planned: Path, tmp_path: Path) -> None:
    result = CliRunner().invoke(main, ["plan", "prod", "--out", str(tmp_path), "--stacks-dir", str(STACKS)])
    assert result.exit_code == 0
    for name in ("resources.json", "summary.json", "report.md"):
        assert (tmp_path / "prod" / name).read_bytes() == (planned / "prod" / name).read_bytes()


def test_invalid_stack_exits_2_names_every_bad_key_and_writes_nothing(tmp_path: Path) -> None:
    raw = mutate(BASE, "gke-inference:tpu_pools.serve.topolgy", "4x4")
    raw = mutate(raw, "gke-inference:tpu_pools.serve.topology", "2x4")
    raw = mutate(raw, "gke-inference:cluster.auto_upgrade", "sometimes")
    stack = write_stack(tmp_path, "broken", raw)
    out = tmp_path / "out"
    result = CliRunner().invoke(main, ["plan", "--stack-file", str(stack), "--out", str(out)])
    assert result.exit_code == 2
    assert "gke-inference:tpu_pools.serve.topolgy: unknown key (did you mean 'topology'?)" in result.stderr
    assert "gke-inference:cluster.auto_upgrade: input should be a valid boolean" in result.stderr
    assert not (out / "broken").exists()


def test_program_registers_nothing_for_a_bad_config(tmp_path: Path) -> None:
    """The program itself (not only the CLI pre-check) refuses before its first resource."""
    stack = StackFile.read(write_stack(tmp_path, "broken", mutate(BASE, "gke-inference:tpu_pools.serve.topology", "2x4")))
    monitor = CapturingMonitor(FakeCloud())
    with pytest.raises(pulumi.RunError, match=r"workloads\.big\.tpu_pools: llama-3\.1-405b"):
        execute(stack, monitor=monitor)
    assert [r.type for r in monitor.captured] == ["pulumi:pulumi:Stack"]


def test_program_registers_resources_for_a_good_config(tmp_path: Path) -> None:
    """The twin of the test above: the same harness does see resources when the config is valid."""
    monitor = execute(StackFile.read(write_stack(tmp_path, "good", BASE)))
    assert "gcp:container/cluster:Cluster" in {r.type for r in monitor.captured}


def test_secure_values_are_never_rendered(tmp_path: Path) -> None:
    raw = mutate(BASE, "gke-inference:hf_token", {"secure": "v1:ZmFrZS1jaXBoZXJ0ZXh0"})
    stack = write_stack(tmp_path, "secret", raw)
    result = CliRunner().invoke(main, ["plan", "--stack-file", str(stack), "--out", str(tmp_path / "out")])
    assert result.exit_code == 0, result.output
    rendered = "".join(p.read_text() for p in (tmp_path / "out" / "secret").rglob("*") if p.is_file())
    assert "ZmFrZS1jaXBoZXJ0ZXh0" not in rendered


def test_plain_masks_secrets_and_normalises_numbers() -> None:
    wire = {"a": 5.0, "b": 0.5, "s": {"4dabf18193072939515e22adb298388d": "1b47061264138c4ac30d75fd1eb44270", "value": "hf_x"}}
    assert plain(wire) == {"a": 5, "b": 0.5, "s": SECRET}


def test_diff_shows_promotion_changes(planned: Path) -> None:
    result = CliRunner().invoke(main, ["diff", str(planned / "staging"), str(planned / "prod")])
    assert result.exit_code == 0
    text = result.output
    assert text.startswith("# Diff: staging → prod")
    assert "deletionProtection" in text  # prod turns deletion protection on
    assert "options.protect" in text


def test_diff_of_a_stack_with_itself_is_empty(planned: Path) -> None:
    result = CliRunner().invoke(main, ["diff", str(planned / "dev"), str(planned / "dev")])
    assert "No resource differences." in result.output


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_every_kubernetes_object_is_rendered_whole_and_valid(planned: Path, env: str) -> None:
    items = [r for r in resources(planned, env) if r["type"].startswith("kubernetes:")]
    objects = [r for r in items if not r["type"].startswith(REFERENCE_TYPES)]
    charts = [r for r in items if r["type"].startswith(REFERENCE_TYPES)]
    files = sorted(f for f in (planned / env / "manifests").glob("*.yaml") if f.name != "references.yaml")
    assert len(files) == len(objects) > 0
    rendered = [yaml.safe_load(f.read_text()) for f in files]
    assert sorted(json.dumps(d, sort_keys=True) for d in rendered) == sorted(
        json.dumps(r["inputs"], sort_keys=True) for r in objects
    )
    references = planned / env / "manifests" / "references.yaml"
    listed = yaml.safe_load(references.read_text())["references"] if references.exists() else []
    # a chart by name and version, a remote manifest by its (pinned) URL
    assert sorted((r["resource"], r.get("chart") or r["file"], r.get("version")) for r in listed) == sorted(
        (r["name"], r["inputs"].get("chart") or r["inputs"]["file"], r["inputs"].get("version")) for r in charts
    )
    assert json.loads((planned / env / "summary.json").read_text())["manifests"]["schema_problems"] == []


def test_schema_problems_name_the_object_and_field() -> None:
    from infra.tooling.render import schema_problems

    good = {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "a", "namespace": "n"}}
    bad = {**good, "automount_service_account_token": False}
    custom = {"apiVersion": "cloud.google.com/v1", "kind": "ComputeClass", "metadata": {"name": "c"}, "spec": {}}
    assert schema_problems([good, custom]) == []
    assert schema_problems([bad]) == [
        "ServiceAccount n/a: Additional properties are not allowed ('automount_service_account_token' was unexpected)"
    ]


def test_autoscaling_defaults_to_the_engine_queue_metric(planned: Path) -> None:
    workloads = {w["name"]: w for w in json.loads((planned / "prod" / "summary.json").read_text())["workloads"]}
    assert workloads["gemma-9b"]["autoscaling"] == {
        "min_replicas": 2,
        "max_replicas": 6,
        "metric": "vllm:num_requests_waiting",
        "target": 5,
    }
    assert workloads["llama-405b"]["autoscaling"]["metric"] == "jetstream_prefill_backlog_size"
