"""The GCP platform layer under mocks: relationships between what the config asks and what renders."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner
from conftest import BASE, ENVIRONMENTS, REPO, STACKS, mutate
from pulumi.runtime import mocks

from components.compute_class import compute_class_spec
from components.identity import workload_principal
from components.load_test import BUCKET_ROLE, PREFIX_ROLES, account_name
from components.node_pools import COMPUTE_CLASS_KEY, POOL_LABEL
from infra.config import StackConfig, Workload, load_config
from infra.names import node_account_id, pathways_account_id, scratch_bucket_name, stack_prefix
from infra.platform.composition import compute_class_args, tpu_node_pool_names
from infra.serving import load_tests
from infra.tooling.cli import main
from infra.tooling.plan import (
    FAKE_CA_CERTIFICATE,
    FAKE_PROJECT_NUMBER,
    CapturingMonitor,
    FakeCloud,
    StackFile,
    execute_both,
    run,
)

NODE_POOL = "gcp:container/nodePool:NodePool"


def load_stack(env: str) -> StackConfig:
    return load_config(yaml.safe_load((STACKS / f"Pulumi.{env}.yaml").read_text())["config"], stack=env)


@pytest.fixture(scope="module")
def plans(tmp_path_factory: pytest.TempPathFactory) -> dict[str, list[dict[str, Any]]]:
    out = {}
    for env in ENVIRONMENTS:
        capture = run(StackFile.read(STACKS / f"Pulumi.{env}.yaml"))
        out[env] = [r.as_json() for r in capture.resources]
    return out


def of_type(items: list[dict[str, Any]], type_: str) -> list[dict[str, Any]]:
    return [r for r in items if r["type"] == type_]


def by_name(items: list[dict[str, Any]], type_: str) -> dict[str, dict[str, Any]]:
    return {r["name"]: r["inputs"] for r in of_type(items, type_)}


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_tpu_node_pools_follow_the_slice(plans: dict[str, list[dict[str, Any]]], env: str) -> None:
    cfg, pools = load_stack(env), by_name(plans[env], NODE_POOL)
    for name, tpu in cfg.tpu_pools.items():
        s = tpu.slice
        names = tpu_node_pool_names(name, tpu.config.slices)
        assert len(names) == tpu.config.slices
        lo, hi = tpu.config.slices_per_pool
        for node_pool in names:
            p = pools[node_pool]
            assert p["nodeConfig"]["machineType"] == s.machine_type
            assert p["nodeLocations"] == list(tpu.zones)
            if tpu.config.autoscaling:
                assert (p["autoscaling"]["minNodeCount"], p["autoscaling"]["maxNodeCount"]) == (lo * s.vms, hi * s.vms)
            else:
                assert p["nodeCount"] == s.vms
            if s.multi_host:
                assert p["placementPolicy"] == {"type": "COMPACT", "tpuTopology": s.topology}
                assert len(p["nodeLocations"]) == 1
            else:
                assert "placementPolicy" not in p
            assert p["nodeConfig"]["labels"][POOL_LABEL] == name


def test_seed_shapes_render_as_in_the_source_documents(plans: dict[str, list[dict[str, Any]]]) -> None:
    """prod: each 405B slice is 4 ct6e-standard-4t nodes (scaled as one); each disaggregated 2x4 slice is 2 nodes."""
    pools = by_name(plans["prod"], NODE_POOL)
    for node_pool in ("v6e-4x4-0", "v6e-4x4-1"):
        p = pools[node_pool]
        assert (p["autoscaling"]["maxNodeCount"], p["nodeConfig"]["machineType"]) == (4, "ct6e-standard-4t")
    assert [pools[f"v6e-2x4-{i}"]["nodeCount"] for i in range(2)] == [2, 2]
    reservation = pools["v6e-4x4-0"]["nodeConfig"]["reservationAffinity"]
    assert reservation == {
        "consumeReservationType": "SPECIFIC_RESERVATION",
        "key": "compute.googleapis.com/reservation-name",
        "values": ["v6e-4x4-prod"],
    }


def test_dev_is_spot_with_at_most_one_single_host_slice(plans: dict[str, list[dict[str, Any]]]) -> None:
    cfg = load_stack("dev")
    assert all(not t.slice.multi_host and t.config.max_slices <= 1 for t in cfg.tpu_pools.values())
    pools = of_type(plans["dev"], NODE_POOL)
    accelerator_pools = [p["inputs"] for p in pools if p["name"] != "cluster-system"]
    assert accelerator_pools and all(p["nodeConfig"].get("spot") is True for p in accelerator_pools)


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_gpu_pools_carry_the_catalog_accelerator(plans: dict[str, list[dict[str, Any]]], env: str) -> None:
    cfg, pools = load_stack(env), by_name(plans[env], NODE_POOL)
    for name, gpu in cfg.gpu_pools.items():
        p = pools[name]
        assert p["nodeConfig"]["guestAccelerators"] == [
            {
                "type": gpu.gpu.gke_accelerator,
                "count": gpu.gpu.machine_types[gpu.config.machine_type],
                "gpuDriverInstallationConfig": {"gpuDriverVersion": gpu.config.driver_version},
            }
        ]
        assert set(p["nodeLocations"]) <= set(gpu.gpu.zones)


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_cache_zones_are_pool_zones_inside_the_bucket_location(plans: dict[str, list[dict[str, Any]]], env: str) -> None:
    items = plans[env]
    bucket = of_type(items, "gcp:storage/bucket:Bucket")[0]["inputs"]
    caches = [r["inputs"] for r in of_type(items, "gcp:storage/anywhereCache:AnywhereCache")]
    pool_zones = {z for p in of_type(items, NODE_POOL) for z in p["inputs"].get("nodeLocations", [])}
    zones = [c["zone"] for c in caches]
    assert len(zones) == len(set(zones)) > 0
    assert set(zones) == {z for z in pool_zones if z.startswith(bucket["location"].lower() + "-")}
    assert all(c["bucket"] == bucket["name"] for c in caches)


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_serving_accounts_read_weights_through_workload_identity(plans: dict[str, list[dict[str, Any]]], env: str) -> None:
    cfg, items = load_stack(env), plans[env]
    members = [r["inputs"] for r in of_type(items, "gcp:storage/bucketIAMMember:BucketIAMMember")]
    on_models = [m for m in members if m["bucket"] == cfg.bucket_name]
    readers = [m for m in on_models if "condition" not in m]
    assert {m["role"] for m in readers} == {"roles/storage.objectViewer"}  # nobody serving may write the weights
    # A batch Job may write only its own results folder: an IAM condition on the object prefix. A load test may add
    # (not overwrite) reports under benchmarks/<workload>/ and read the bucket's own metadata, nothing else.
    tested = load_tests.tested(cfg)
    for m in (m for m in on_models if "condition" in m):
        account = m["member"].rsplit("/sa/", 1)[1]
        expression = m["condition"]["expression"]
        if account in {account_name(n) for n in tested}:
            workload = account.removesuffix("-load-test")
            assert (m["role"], expression) in {
                (role, f'resource.name.startsWith("projects/_/buckets/{cfg.bucket_name}/objects/benchmarks/{workload}/")')
                for role in PREFIX_ROLES
            } | {(BUCKET_ROLE, f'resource.name == "projects/_/buckets/{cfg.bucket_name}"')}
            continue
        assert cfg.workloads[account].config.batch is not None
        assert expression == f'resource.name.startsWith("projects/_/buckets/{cfg.bucket_name}/objects/batch/{account}/")'
    granted = {m["member"].rsplit("/sa/", 1)[1] for m in on_models if "condition" in m}
    assert {account_name(n) for n in tested} <= granted
    # Kubernetes accounts read through Workload Identity wherever their pods may run with it: every engine but
    # Pathways, whose pools run with it off (their pods act as the Pathways node account) unless a compute class may
    # auto-create nodes for it. The Pathways node account is the one Google account on the buckets.
    pathways = [w for w in cfg.workloads.values() if w.config.engine == "jetstream-pathways"]
    on_wi = [w for w in cfg.workloads.values() if w not in pathways or auto_created_nodes(cfg, w)]
    node_account = {f"serviceAccount:{pathways_account_id(stack_prefix(cfg))}@{cfg.project}.iam.gserviceaccount.com"}
    assert sorted(m["member"] for m in readers) == sorted(
        [workload_principal(FAKE_PROJECT_NUMBER, cfg.project, w.config.namespace, w.service_account) for w in on_wi]
        + sorted(node_account if pathways else ())
    )
    # Pathways writes its scratch state to the stack's own bucket, and only JetStream identities may.
    writers = [m for m in members if m["bucket"] != cfg.bucket_name]
    assert {(m["bucket"], m["role"]) for m in writers} <= {(scratch_bucket_name(cfg.bucket_name), "roles/storage.objectUser")}
    assert sorted(m["member"] for m in writers) == sorted(
        [
            workload_principal(FAKE_PROJECT_NUMBER, cfg.project, w.config.namespace, w.service_account)
            for w in pathways
            if w in on_wi
        ]
        + sorted(node_account if pathways else ())
    )


def auto_created_nodes(cfg: StackConfig, workload: Workload) -> bool:
    """Whether a compute class may auto-create nodes (Workload Identity on) for one of the workload's TPU pools."""
    classes = [cfg.compute_class_of(p.name) for p in workload.tpu_pools]
    return any(c is not None and cfg.compute_classes[c].node_pool_auto_creation for c in classes)


def test_principal_format() -> None:
    assert workload_principal("42", "p-1", "inference", "vllm") == (
        "principal://iam.googleapis.com/projects/42/locations/global/workloadIdentityPools/p-1.svc.id.goog/subject/ns/inference/sa/vllm"
    )


@pytest.mark.parametrize(("env", "on"), [("dev", False), ("staging", False), ("prod", True)])
def test_stateful_resources_are_protected_in_prod(plans: dict[str, list[dict[str, Any]]], env: str, on: bool) -> None:
    bucket = of_type(plans[env], "gcp:storage/bucket:Bucket")[0]
    cluster = of_type(plans[env], "gcp:container/cluster:Cluster")[0]
    assert (bucket["options"]["protect"], bucket["options"]["retainOnDelete"]) == (on, on)
    assert cluster["options"]["protect"] is on
    assert bucket["inputs"]["uniformBucketLevelAccess"] is True
    assert bucket["inputs"]["publicAccessPrevention"] == "enforced"


def test_kms_keys_are_granted_to_the_service_agents(tmp_path: Path) -> None:
    key = "projects/acme-test-1/locations/us-east5/keyRings/r/cryptoKeys/k"
    raw = mutate(mutate(BASE, "gke-inference:cluster.secrets_encryption_key", key), "gke-inference:model_storage.kms_key", key)
    path = tmp_path / "Pulumi.kms.yaml"
    path.write_text(yaml.safe_dump({"config": raw}))
    items = [r.as_json() for r in run(StackFile.read(path)).resources]
    grants = {r["inputs"]["member"]: r for r in of_type(items, "gcp:kms/cryptoKeyIAMMember:CryptoKeyIAMMember")}
    assert set(grants) == {
        f"serviceAccount:service-{FAKE_PROJECT_NUMBER}@container-engine-robot.iam.gserviceaccount.com",
        f"serviceAccount:service-{FAKE_PROJECT_NUMBER}@gs-project-accounts.iam.gserviceaccount.com",
    }
    cluster = of_type(items, "gcp:container/cluster:Cluster")[0]
    bucket = of_type(items, "gcp:storage/bucket:Bucket")[0]
    assert {g["urn"] for g in grants.values()} == {*cluster["dependencies"], *bucket["dependencies"]} & {
        g["urn"] for g in grants.values()
    }
    assert bucket["inputs"]["encryption"] == {"defaultKmsKeyName": key}


def test_required_apis_follow_features(plans: dict[str, list[dict[str, Any]]]) -> None:
    enabled = {env: {r["inputs"]["service"] for r in of_type(plans[env], "gcp:projects/service:Service")} for env in ENVIRONMENTS}
    assert "tpu.googleapis.com" in enabled["dev"] and "cloudkms.googleapis.com" not in enabled["dev"]
    assert "cloudkms.googleapis.com" in enabled["prod"] and "networkservices.googleapis.com" in enabled["staging"]
    gcp = next(r for r in plans["prod"] if r["type"] == "pulumi:providers:gcp" and r["name"] == "gcp")
    services = {r["urn"] for r in of_type(plans["prod"], "gcp:projects/service:Service")}
    assert services <= set(gcp["dependencies"])  # everything else waits for the APIs


def test_compute_class_selects_its_pool_then_walks_the_ladder(plans: dict[str, list[dict[str, Any]]]) -> None:
    cfg = load_stack("prod")
    classes = of_type(plans["prod"], "kubernetes:cloud.google.com/v1:ComputeClass")
    assert [c["inputs"]["metadata"]["name"] for c in classes] == list(cfg.compute_classes)
    spec = classes[0]["inputs"]["spec"]
    cc = cfg.compute_classes["tpu-v6e-4x4"]
    pool = cfg.tpu_pools[cc.pool]
    assert spec["priorities"][0] == {"nodepools": list(tpu_node_pool_names(cc.pool, pool.config.slices))}
    rungs = spec["priorities"][1:]
    assert [("reservation" if "reservations" in r else "on_demand") for r in rungs] == list(cc.ladder)
    assert all(r["tpu"] == {"type": "tpu-v6e-slice", "count": pool.slice.chips_per_vm, "topology": "4x4"} for r in rungs)
    assert rungs[0]["reservations"]["specific"][0]["zones"] == list(pool.zones) and "location" not in rungs[0]
    for node_pool in tpu_node_pool_names(cc.pool, pool.config.slices):
        labels = by_name(plans["prod"], NODE_POOL)[node_pool]["nodeConfig"]
        assert labels["labels"][COMPUTE_CLASS_KEY] == "tpu-v6e-4x4"
        assert labels["taints"] == [{"key": COMPUTE_CLASS_KEY, "value": "tpu-v6e-4x4", "effect": "NO_SCHEDULE"}]


def test_compute_class_rungs_for_every_capacity_model(catalog: object) -> None:
    cfg = load_config(
        mutate(
            mutate(BASE, "gke-inference:gpu_pools.l4.reservation", "r1"), "gke-inference:gpu_pools.l4.provisioning", "reservation"
        )
        | {"gke-inference:compute_classes": {"l4": {"pool": "l4", "ladder": ["reservation", "on_demand", "flex_start", "spot"]}}},
        stack="t",
    )
    args = compute_class_args(cfg, cfg.compute_classes["l4"], "sa@x")
    assert (args.node_pools, args.project) == (("l4",), "acme-test-1")
    spec = compute_class_spec(args, "sa@x").to_k8s()
    rungs = spec["priorities"][1:]
    assert [r.get("spot") for r in rungs] == [False, False, None, True]
    assert rungs[2]["flexStart"] == {"enabled": True}
    assert all(r["gpu"] == {"type": "nvidia-l4", "count": 1, "driverVersion": "latest"} for r in rungs)
    assert spec["nodePoolConfig"]["serviceAccount"] == "sa@x"


SCHEMAS = Path(os.environ.get("GKE_INFERENCE_SCHEMAS", REPO.parent / "shared" / "schemas"))


@pytest.mark.skipif(
    not (SCHEMAS / "cloud.google.com_computeclass_v1.json").is_file(),
    reason="upstream schemas not available (conformance runs in CI)",
)
def test_rendered_compute_classes_match_the_upstream_schema(tmp_path: Path) -> None:
    import jsonschema

    schema = json.loads((SCHEMAS / "cloud.google.com_computeclass_v1.json").read_text())
    result = CliRunner().invoke(main, ["plan", "--out", str(tmp_path), "--stacks-dir", str(STACKS)])
    assert result.exit_code == 0
    rendered = sorted(tmp_path.glob("*/manifests/ComputeClass_*.yaml"))
    assert rendered
    for path in rendered:
        document = yaml.safe_load(path.read_text())
        jsonschema.validate(document, schema)
        # the same check refuses the classic mistake: a snake_case key pasted into the spec
        broken = {**document, "spec": {**document["spec"], "when_unsatisfiable": "DoNotScaleUp"}}
        with pytest.raises(jsonschema.ValidationError):
            jsonschema.validate(broken, schema)


def existing_cluster_and_vpc(tmp_path: Path) -> Path:
    """A stack file of the base stack that brings its own cluster and VPC instead of creating them."""
    raw = mutate(BASE, "gke-inference:cluster.existing", {"name": "shared-gke", "location": "us-east5"})
    raw = mutate(
        raw,
        "gke-inference:network.existing",
        {"network": "shared-vpc", "subnetwork": "gke-nodes", "pods_range_name": "pods", "services_range_name": "svc"},
    )
    path = tmp_path / "Pulumi.existing.yaml"
    path.write_text(yaml.safe_dump({"config": raw}))
    return path


def test_existing_cluster_and_vpc_create_neither(tmp_path: Path) -> None:
    path = existing_cluster_and_vpc(tmp_path)
    capture = run(StackFile.read(path))
    items = [r.as_json() for r in capture.resources]
    types = {r["type"] for r in items}
    assert not types & {"gcp:container/cluster:Cluster", "gcp:compute/network:Network", "gke-inference:cluster:Cluster"}
    # the serving layer trusts the CA that GCP reports for the existing cluster (getCluster's masterAuths)
    assert capture.outputs["platform"]["cluster_ca_certificate"] == FAKE_CA_CERTIFICATE
    pools = of_type(items, NODE_POOL)
    assert pools and {p["inputs"]["cluster"] for p in pools} == {"shared-gke"}
    assert "pulumi:providers:kubernetes" in types


def test_existing_cluster_needs_an_existing_vpc() -> None:
    from infra.config import ConfigError

    with pytest.raises(
        ConfigError,
        match=r"^gke-inference:network\.existing: an existing cluster runs in an existing VPC; expected network\.existing naming it, got nothing$",
    ):
        load_config(mutate(BASE, "gke-inference:cluster.existing", {"name": "shared-gke", "location": "us-east5"}), stack="t")


@pytest.mark.parametrize(
    ("provisioning", "expected"),
    [
        ("spot", {"spot": True}),
        ("flex_start", {"flexStart": True}),
        ("queued", {"reservationAffinity": {"consumeReservationType": "NO_RESERVATION"}}),
    ],
)
def test_gpu_pool_capacity_models_and_image_cache(tmp_path: Path, provisioning: str, expected: dict[str, Any]) -> None:
    pool = {"provisioning": provisioning, "local_ssd_count": 2, "secondary_boot_disk_image": "global/images/vllm-cache"}
    raw = mutate(BASE, "gke-inference:gpu_pools.l4", {**BASE["gke-inference:gpu_pools"]["l4"], **pool})
    path = tmp_path / "Pulumi.gpu.yaml"
    path.write_text(yaml.safe_dump({"config": raw}))
    items = [r.as_json() for r in run(StackFile.read(path)).resources]
    p = by_name(items, NODE_POOL)["l4"]
    assert expected.items() <= p["nodeConfig"].items()
    assert p["nodeConfig"]["ephemeralStorageLocalSsdConfig"] == {"localSsdCount": 2}
    assert p["nodeConfig"]["secondaryBootDisks"] == [{"diskImage": "global/images/vllm-cache", "mode": "CONTAINER_IMAGE_CACHE"}]
    assert ("queuedProvisioning" in p) == (provisioning == "queued")
    assert p["autoscaling"]["locationPolicy"] == "ANY"


@pytest.mark.parametrize("prefix", ["inference-prod", "a-very-long-cluster-name-staging", "x" * 28 + "-dev"])
def test_node_account_ids_are_valid_and_distinct(prefix: str) -> None:
    """GCP's account-id rule (6-30 characters, a letter first, no trailing hyphen); the Pathways account keeps its
    whole suffix, so the two accounts of a stack never collapse into one id however long the prefix."""
    general, pathways = node_account_id(prefix), pathways_account_id(prefix)
    for account in (general, pathways):
        assert re.fullmatch(r"[a-z][a-z0-9-]{4,28}[a-z0-9]", account), account
    assert pathways.endswith("-pathways") and pathways != general
    if len(f"{prefix}-pathways") <= 30:
        assert pathways == f"{prefix}-pathways"


class InvokeRecorder(mocks.Mocks):
    """The plan's fake cloud, recording each data-source lookup's function and the provider it went through."""

    def __init__(self, fake: FakeCloud, calls: list[tuple[str, str]]):
        self.fake, self.calls = fake, calls

    def new_resource(self, args: mocks.MockResourceArgs) -> tuple[str, dict[str, Any]]:
        return self.fake.new_resource(args)

    def call(self, args: mocks.MockCallArgs) -> tuple[dict[str, Any], list[tuple[str, str]]]:
        self.calls.append((args.token, args.provider))
        return self.fake.call(args)


def test_every_lookup_goes_through_the_layers_own_gcp_provider(tmp_path: Path) -> None:
    """A lookup without the explicit provider uses an ambient default one, whose project is whatever the machine's
    gcloud says: an existing cluster must be looked up in the stack's project, through the provider its resources use."""
    path = existing_cluster_and_vpc(tmp_path)
    calls: dict[int, list[tuple[str, str]]] = {}

    def monitor(fake: FakeCloud) -> CapturingMonitor:
        return CapturingMonitor(InvokeRecorder(fake, calls.setdefault(len(calls), [])))

    layers = execute_both(StackFile.read(path), monitor=monitor)
    for layer, recorded in zip(layers, calls.values(), strict=True):
        gcp_providers = {r.urn for r in layer.captured if r.type == "pulumi:providers:gcp"}
        for token, provider in recorded:
            assert provider.rsplit("::", 1)[0] in gcp_providers, (token, provider)
    assert "gcp:container/getCluster:getCluster" in {token for recorded in calls.values() for token, _ in recorded}


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_the_cluster_allocates_pods_and_services_from_its_subnets_ranges(
    plans: dict[str, list[dict[str, Any]]], env: str
) -> None:
    """A VPC-native cluster names the secondary ranges of its subnetwork it takes pod and service IPs from: a name the
    subnetwork lacks fails the create call."""
    [cluster] = of_type(plans[env], "gcp:container/cluster:Cluster")
    subnets = {s["inputs"]["name"]: s["inputs"] for s in of_type(plans[env], "gcp:compute/subnetwork:Subnetwork")}
    ranges = {r["rangeName"] for r in subnets[cluster["inputs"]["subnetwork"]].get("secondaryIpRanges", [])}
    policy = cluster["inputs"]["ipAllocationPolicy"]
    used = {policy.get("clusterSecondaryRangeName"), policy.get("servicesSecondaryRangeName")}
    assert len(used) == 2 and used <= ranges


GCP_LABEL_KEY = re.compile(r"[a-z][a-z0-9_-]{0,62}")
"""https://cloud.google.com/resource-manager/docs/labels-overview#requirements: lowercase letters, digits, _ and -."""


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_every_gcp_label_key_is_one_gcp_accepts(plans: dict[str, list[dict[str, Any]]], env: str) -> None:
    """The providers' default labels land on every GCP resource: one key GCP refuses fails every create call."""
    providers = of_type(plans[env], "pulumi:providers:gcp")
    assert providers
    for r in plans[env]:
        if r["type"] == "pulumi:providers:gcp" or r["type"].startswith("gcp:"):
            for field in ("defaultLabels", "labels", "resourceLabels", "userLabels"):
                labels = r["inputs"].get(field) or {}
                labels = json.loads(labels) if isinstance(labels, str) else labels
                assert all(GCP_LABEL_KEY.fullmatch(k) for k in labels), (r["urn"], labels)
    assert all(p["inputs"].get("defaultLabels") for p in providers)
