"""Stack policies on the captured prod platform plus a compliant serving layer: each breaks with one change."""

from __future__ import annotations

from typing import Any

import pytest
from fixtures import (
    BUCKET,
    BUCKET_TYPE,
    CACHE,
    CACHE_IN_ANOTHER_REGION,
    CLASS_SCALING_UP_ANYWAY,
    CLUSTER_TYPE,
    COMPUTE_CLASS,
    DELETE,
    GATEWAY,
    GPU_POOL,
    HPA,
    HPA_ON_ABSENT_TARGET,
    IAM_MEMBER,
    LWS,
    LWS_SUBGROUP_OF_TWO,
    MODELS_KEY,
    MONITORING_UNDECLARED_PORT,
    NAMES,
    NETWORK_POLICY,
    PDB_WITHOUT_DISRUPTION,
    PLATFORM_APIS,
    POD_MONITORING,
    PROXY_ONLY_SUBNET,
    TPU_POOL,
    VLLM,
    VLLM_ON_ABSENT_GPU,
    VLLM_ON_GCSFUSE,
    captured,
    k8s,
    keyed,
    messages,
    mutate,
    node_sa_editor,
    prod_capture,
    prod_platform,
    project_services,
    serving_stack,
    violations,
    with_cluster,
)

from infra import sizing
from infra.catalog import load as load_catalog
from infra.tooling.plan import UNKNOWN, Capture, Captured
from infra.tooling.policy_runner import run as run_pack
from infra.tooling.report import SYSTEM_POOL_ZONES
from policies.registry import POLICIES
from policies.stack_consistency import POLICIES as STACK_POLICIES

LWS_LABEL = "LeaderWorkerSet inference/llama-405b"


@pytest.fixture(scope="module")
def prod() -> Capture:
    return prod_capture()


@pytest.fixture(scope="module")
def platform() -> list[Captured]:
    return prod_platform()


def node_role_binding(platform: list[Captured], role: str) -> str:
    return next(r.name for r in platform if r.type == IAM_MEMBER and r.inputs["role"] == role)


def stack_messages(policy: str, platform: list[Captured], **overrides: Any) -> list[str]:
    return messages(policy, *serving_stack(platform, **overrides))


def test_compliant_stack_passes_every_policy_at_mandatory(platform: list[Captured]) -> None:
    found = run_pack(serving_stack(platform), POLICIES, {p.name: "mandatory" for p in POLICIES})
    assert found == []


def test_the_compliant_stack_is_joined_not_vacuous(platform: list[Captured]) -> None:
    """The zero above comes from real joins: removing the pools makes the placement policies fire."""
    stack = [r for r in serving_stack(platform) if r.type != "gcp:container/nodePool:NodePool" or r.name == "cluster-system"]
    assert {v.policy for v in run_pack(stack, STACK_POLICIES, {})} >= {
        "inf-stack-workload-matches-pool",
        "inf-stack-compute-class-capacity",
        "inf-stack-anywhere-cache-placement",
    }


# ----------------------------------------------------------------------------------- placement


def test_workload_selector_must_match_a_pool(platform: list[Captured]) -> None:
    assert stack_messages("inf-stack-workload-matches-pool", platform, vllm=VLLM_ON_ABSENT_GPU) == [
        "Deployment inference/gemma-9b: nodeSelector cloud.google.com/gke-accelerator=nvidia-h100-80gb matches no node pool "
        "(have: system: e2-standard-16; v6e-4x4: v6e 4x4 (4x ct6e-standard-4t); l4x2: 2x nvidia-l4)"
    ]


def test_tpu_topology_selector_must_match_the_slice(platform: list[Captured]) -> None:
    """google/sam#101: a 1x1 selector on a 4x4 pool stays Pending forever."""
    lws = mutate(
        LWS,
        "spec.leaderWorkerTemplate.workerTemplate.spec.nodeSelector",
        {"cloud.google.com/gke-tpu-accelerator": "tpu-v6e-slice", "cloud.google.com/gke-tpu-topology": "1x1"},
    )
    found = stack_messages("inf-stack-workload-matches-pool", platform, lws=lws)
    assert found == [
        f"{LWS_LABEL} (worker): nodeSelector cloud.google.com/gke-tpu-accelerator=tpu-v6e-slice, "
        "cloud.google.com/gke-tpu-topology=1x1 matches no node pool "
        "(have: system: e2-standard-16; v6e-4x4: v6e 4x4 (4x ct6e-standard-4t); l4x2: 2x nvidia-l4)"
    ]


def test_unknown_compute_class_is_reported(platform: list[Captured]) -> None:
    lws = mutate(LWS, "spec.leaderWorkerTemplate.leaderTemplate.spec.nodeSelector", {"cloud.google.com/compute-class": "tpu-v7"})
    assert stack_messages("inf-stack-workload-matches-pool", platform, lws=lws) == [
        f"{LWS_LABEL} (leader): compute class tpu-v7 is neither a ComputeClass nor a labelled pool"
    ]


def test_gpu_limit_above_one_node_is_reported(platform: list[Captured]) -> None:
    vllm = mutate(VLLM, "spec.template.spec.containers.0.resources.limits.[nvidia.com/gpu]", "4")
    vllm = mutate(vllm, "spec.template.spec.containers.0.resources.requests.[nvidia.com/gpu]", "4")
    assert stack_messages("inf-stack-workload-matches-pool", platform, vllm=vllm) == [
        "Deployment inference/gemma-9b: nvidia.com/gpu limit 4 exceeds the 2 GPUs of one node in l4x2"
    ]


def test_a_class_that_creates_its_own_pools_needs_no_pool_in_the_stack(platform: list[Captured]) -> None:
    """With nodePoolAutoCreation on, GKE creates the pool when the pods arrive; off, they stay Pending."""
    untainted = mutate(TPU_POOL, "nodeConfig.taints", [])  # no longer the class's pool
    elsewhere = mutate(COMPUTE_CLASS, "spec.priorities", [{"tpu": {"type": "tpu-v5p-slice", "topology": "2x2x1"}}])
    for enabled, expected in ((True, 0), (False, 2)):
        cc = mutate(elsewhere, "spec.nodePoolAutoCreation.enabled", enabled)
        found = stack_messages("inf-stack-workload-matches-pool", platform, tpu_pool=untainted, compute_class=cc)
        assert len(found) == expected and all("matches no node pool" in m for m in found), (enabled, found)


def test_lws_size_tpu_limit_and_pathways_flags_follow_the_catalog(platform: list[Captured]) -> None:
    slice_ = load_catalog().tpu_slice("v6e", "4x4")
    lws = mutate(LWS, "spec.leaderWorkerTemplate.size", slice_.vms)  # forgot the Pathways leader
    lws = mutate(lws, "spec.leaderWorkerTemplate.workerTemplate.spec.containers.0.resources.limits.[google.com/tpu]", "8")
    lws = mutate(lws, "spec.leaderWorkerTemplate.workerTemplate.spec.containers.0.resources.requests.[google.com/tpu]", "8")
    lws = mutate(lws, "spec.leaderWorkerTemplate.leaderTemplate.spec.containers.0.args.2", "--instance_type=tpuv6e:2x4")
    assert stack_messages("inf-stack-lws-size", platform, lws=lws) == [
        f"{LWS_LABEL}: size {slice_.vms} but 1 x v6e 4x4 (4x ct6e-standard-4t) + 1 Pathways leader needs {slice_.vms + 1}",
        f"{LWS_LABEL}: worker google.com/tpu limit 8 but ct6e-standard-4t has {slice_.chips_per_vm} chips per VM",
        f"{LWS_LABEL}: --instance_type=tpuv6e:2x4 but the pool forms tpuv6e:4x4",
    ]


def test_lws_size_counts_every_slice_of_a_multislice_group(platform: list[Captured]) -> None:
    lws = mutate(LWS, "spec.leaderWorkerTemplate.leaderTemplate.spec.containers.0.args.1", "--instance_count=2")
    assert stack_messages("inf-stack-lws-size", platform, lws=lws) == [
        f"{LWS_LABEL}: size 5 but 2 x v6e 4x4 (4x ct6e-standard-4t) + 1 Pathways leader needs 9"
    ]


def test_lws_size_reads_a_flag_given_as_two_words_and_not_one_left_without_a_value(platform: list[Captured]) -> None:
    path = "spec.leaderWorkerTemplate.leaderTemplate.spec.containers.0.args"
    spec = LWS["spec"]["leaderWorkerTemplate"]["leaderTemplate"]["spec"]
    args = [a for a in spec["containers"][0]["args"] if not a.startswith(("--instance_count=", "--instance_type="))]
    lws = mutate(LWS, path, [*args, "--instance_count", "2", "--instance_type"])
    assert stack_messages("inf-stack-lws-size", platform, lws=lws) == [
        f"{LWS_LABEL}: size 5 but 2 x v6e 4x4 (4x ct6e-standard-4t) + 1 Pathways leader needs 9"
    ]


def test_lws_size_flags_a_group_larger_than_its_slices(platform: list[Captured]) -> None:
    """One pod too many is as wrong as one too few: the extra worker finds no host of the slice and the group never
    becomes ready."""
    slice_ = load_catalog().tpu_slice("v6e", "4x4")
    lws = mutate(LWS, "spec.leaderWorkerTemplate.size", slice_.vms + 2)
    assert stack_messages("inf-stack-lws-size", platform, lws=lws) == [
        f"{LWS_LABEL}: size {slice_.vms + 2} but 1 x v6e 4x4 (4x ct6e-standard-4t) + 1 Pathways leader needs {slice_.vms + 1}"
    ]
    assert stack_messages("inf-stack-lws-size", platform, lws=mutate(LWS, "spec.leaderWorkerTemplate.size", slice_.vms + 1)) == []


def test_a_group_whose_leader_holds_chips_has_no_extra_pod(platform: list[Captured]) -> None:
    """A leader that requests google.com/tpu is the slice's first host, not a Pathways leader: the group is one pod per
    VM of the slice."""
    slice_ = load_catalog().tpu_slice("v6e", "4x4")
    chips = str(slice_.chips_per_vm)
    leader = "spec.leaderWorkerTemplate.leaderTemplate.spec.containers.0.resources"
    lws = mutate(mutate(LWS, f"{leader}.limits.[google.com/tpu]", chips), f"{leader}.requests.[google.com/tpu]", chips)
    assert stack_messages("inf-stack-lws-size", platform, lws=lws) == [
        f"{LWS_LABEL}: size {slice_.vms + 1} but 1 x v6e 4x4 (4x ct6e-standard-4t) needs {slice_.vms}"
    ]
    assert stack_messages("inf-stack-lws-size", platform, lws=mutate(lws, "spec.leaderWorkerTemplate.size", slice_.vms)) == []


def test_lws_subgroup_must_be_one_slice(platform: list[Captured]) -> None:
    assert stack_messages("inf-stack-lws-size", platform, lws=LWS_SUBGROUP_OF_TWO) == [
        f"{LWS_LABEL}: subGroupSize 2 but one 4x4 slice has 4 hosts"
    ]


def test_compute_class_without_capacity(platform: list[Captured]) -> None:
    pool = mutate(TPU_POOL, "nodeConfig.taints", [])  # labelled but not tainted: GKE will not use it for the class
    cc = mutate(COMPUTE_CLASS, "spec.priorities", [{"nodepools": ["v6e-4x8"]}])
    assert stack_messages("inf-stack-compute-class-capacity", platform, tpu_pool=pool, compute_class=cc) == [
        "ComputeClass tpu-v6e-4x4: priority 1 names node pool v6e-4x8, which does not exist",
        "ComputeClass tpu-v6e-4x4: no node pool is labelled and tainted cloud.google.com/compute-class=tpu-v6e-4x4 or named "
        "by a priority, and nodePoolAutoCreation is off: its pods stay Pending",
    ]


def test_compute_class_scale_up_anyway_on_accelerators(platform: list[Captured]) -> None:
    assert stack_messages("inf-stack-compute-class-capacity", platform, compute_class=CLASS_SCALING_UP_ANYWAY) == [
        "ComputeClass tpu-v6e-4x4: whenUnsatisfiable ScaleUpAnyway gives accelerator pods E2 nodes; expected DoNotScaleUp"
    ]


def test_anywhere_cache_zone_outside_bucket_and_pools(platform: list[Captured]) -> None:
    assert stack_messages("inf-stack-anywhere-cache-placement", platform, cache=CACHE_IN_ANOTHER_REGION) == [
        "AnywhereCache models-us-east5-b: zone us-central1-c is not in bucket acme-test-models location US-EAST5",
        "AnywhereCache models-us-east5-b: no accelerator node pool in us-central1-c (pool zones: us-east5-a, us-east5-b); "
        "the cache serves same-zone clients only",
    ]


def test_anywhere_cache_one_per_zone(platform: list[Captured]) -> None:
    stack = serving_stack(platform)
    bucket = next(r for r in stack if r.type == "gcp:storage/bucket:Bucket")
    twin = captured("gcp:storage/anywhereCache:AnywhereCache", "models-twin", CACHE, deps={"bucket": [bucket]})
    assert messages("inf-stack-anywhere-cache-placement", *stack, twin) == [
        "bucket acme-test-models has 2 Anywhere Caches in us-east5-b; one per zone is allowed"
    ]


def test_caches_of_two_buckets_share_a_zone_when_bucket_names_are_computed(platform: list[Captured]) -> None:
    """One cache per bucket and zone: a bucket input computed from the Bucket resource still tells the buckets apart."""
    stack = serving_stack(platform, cache=mutate(CACHE, "bucket", UNKNOWN))
    bucket = next(r for r in stack if r.type == BUCKET_TYPE)
    other = captured(BUCKET_TYPE, "models-b", mutate(BUCKET, "name", "acme-test-models-b"), protect=True)
    for twin_of, expected in (
        (other, []),
        (bucket, ["bucket acme-test-models has 2 Anywhere Caches in us-east5-b; one per zone is allowed"]),
    ):
        twin = captured(
            "gcp:storage/anywhereCache:AnywhereCache", "twin", mutate(CACHE, "bucket", UNKNOWN), deps={"bucket": [twin_of]}
        )
        assert messages("inf-stack-anywhere-cache-placement", *stack, other, twin) == expected


# ------------------------------------------------------------------------------ gateway, metrics


def _without(stack: list[Captured], name: str) -> list[Captured]:
    return [r for r in stack if r.name != name]


def test_gateway_needs_the_proxy_only_subnet_and_channel(platform: list[Captured]) -> None:
    broken = with_cluster(platform, gatewayApiConfig__channel="CHANNEL_DISABLED", addonsConfig__httpLoadBalancing__disabled=True)
    stack = _without(serving_stack(broken), PROXY_ONLY_SUBNET)
    assert messages("inf-stack-inference-gateway-prereqs", *stack) == [
        "cluster cluster-gke: gatewayApiConfig.channel is CHANNEL_DISABLED; Gateway API objects need CHANNEL_STANDARD",
        "cluster cluster-gke: the HTTP load balancing add-on is disabled; the GKE Gateway controller needs it",
        "cluster cluster-gke: gateway class gke-l7-rilb needs exactly one ACTIVE REGIONAL_MANAGED_PROXY subnet in us-east5 "
        "on the cluster's VPC; found 0",
    ]


def test_gateway_prereqs_name_every_regional_class_in_use(platform: list[Captured]) -> None:
    external = mutate(mutate(GATEWAY, "metadata.name", "external"), "spec.gatewayClassName", "gke-l7-regional-external-managed")
    stack = [*_without(serving_stack(platform), PROXY_ONLY_SUBNET), k8s(external)]
    assert messages("inf-stack-inference-gateway-prereqs", *stack) == [
        "cluster cluster-gke: gateway class gke-l7-regional-external-managed, gke-l7-rilb needs exactly one ACTIVE "
        "REGIONAL_MANAGED_PROXY subnet in us-east5 on the cluster's VPC; found 0",
    ]


def test_gateway_prereqs_not_applicable_without_gateway_objects(platform: list[Captured]) -> None:
    stack = [r for r in _without(serving_stack(platform), PROXY_ONLY_SUBNET) if "gateway.networking" not in r.type]
    stack = [r for r in stack if "InferencePool" not in r.type]
    assert messages("inf-stack-inference-gateway-prereqs", *stack) == []


def test_pod_monitoring_port_must_be_declared(platform: list[Captured]) -> None:
    """prometheus-engine#697: a port name the pods do not declare is silently never scraped."""
    assert stack_messages("inf-stack-gmp-podmonitoring", platform, pod_monitoring=MONITORING_UNDECLARED_PORT) == [
        "PodMonitoring gemma-9b: port metrics is not a container port of the selected pods (have: 8000, http)"
    ]


def test_pod_monitoring_selector_and_namespace(platform: list[Captured]) -> None:
    pm = mutate(POD_MONITORING, "metadata.namespace", "monitoring")
    assert stack_messages("inf-stack-gmp-podmonitoring", platform, pod_monitoring=pm) == [
        "PodMonitoring gemma-9b: selector app=gemma-9b matches no pod template in namespace monitoring"
    ]


def test_pod_monitoring_needs_managed_prometheus(platform: list[Captured]) -> None:
    stack = serving_stack(with_cluster(platform, monitoringConfig__managedPrometheus__enabled=False))
    assert messages("inf-stack-gmp-podmonitoring", *stack) == [
        "cluster cluster-gke: monitoringConfig.managedPrometheus.enabled is not true but 1 PodMonitoring(s) need it"
    ]


def test_hpa_target_must_exist(platform: list[Captured]) -> None:
    assert stack_messages("inf-stack-hpa-target", platform, hpa=HPA_ON_ABSENT_TARGET) == [
        "HPA gemma-9b: scaleTargetRef Deployment/gemma-2b does not exist in namespace inference"
    ]


def test_hpa_custom_metric_needs_a_pod_monitoring_on_the_target(platform: list[Captured]) -> None:
    pm = mutate(POD_MONITORING, "spec.selector.matchLabels.app", "llama-405b")
    assert stack_messages("inf-stack-hpa-target", platform, pod_monitoring=pm) == [
        "HPA gemma-9b: metric prometheus.googleapis.com|vllm:num_requests_waiting|gauge but no PodMonitoring scrapes "
        "Deployment/gemma-9b"
    ]


def test_hpa_on_a_leader_worker_set_reads_the_leaders_metrics(platform: list[Captured]) -> None:
    """The LWS scale subresource selects the leaders (status.hpaPodSelector): a PodMonitoring on the workers only
    gives the HPA no metric."""
    lws_target = {"apiVersion": "leaderworkerset.x-k8s.io/v1", "kind": "LeaderWorkerSet", "name": "llama-405b"}
    hpa = mutate(HPA, "spec.scaleTargetRef", lws_target)
    for app, expected in (
        ("llama-405b", []),
        (
            "llama-405b-worker",
            [
                "HPA gemma-9b: metric prometheus.googleapis.com|vllm:num_requests_waiting|gauge but no PodMonitoring scrapes "
                "LeaderWorkerSet/llama-405b"
            ],
        ),
    ):
        pm = mutate(POD_MONITORING, "spec.selector.matchLabels.app", app)
        assert stack_messages("inf-stack-hpa-target", platform, hpa=hpa, pod_monitoring=pm) == expected, app


def test_an_object_without_a_namespace_is_in_the_default_namespace(platform: list[Captured]) -> None:
    vllm = mutate(VLLM, "metadata.namespace", DELETE)
    in_default = {"pod_monitoring": mutate(POD_MONITORING, "metadata.namespace", "default"), "vllm": vllm}
    hpa = mutate(HPA, "metadata.namespace", "default")
    assert stack_messages("inf-stack-hpa-target", platform, hpa=hpa, **in_default) == []
    assert stack_messages("inf-stack-hpa-target", platform, hpa=HPA, **in_default) == [
        "HPA gemma-9b: scaleTargetRef Deployment/gemma-9b does not exist in namespace inference"
    ]


def test_pdb_and_network_policy(platform: list[Captured]) -> None:
    netpol = mutate(NETWORK_POLICY, "spec.podSelector", {"matchLabels": {"app": "other"}})
    assert stack_messages("inf-stack-pdb-and-netpol", platform, pdb=PDB_WITHOUT_DISRUPTION, network_policy=netpol) == [
        "Deployment inference/gemma-9b: PodDisruptionBudget serving allows no voluntary disruption",
        "Deployment inference/gemma-9b: no NetworkPolicy selects its pods",
        f"{LWS_LABEL}: PodDisruptionBudget serving allows no voluntary disruption",
        f"{LWS_LABEL}: no NetworkPolicy selects its pods",
    ]


def test_pdb_and_network_policy_findings_are_the_workloads(platform: list[Captured]) -> None:
    """Each finding is attached to its workload, so excluding the workload by name drops its findings and no other."""
    netpol = mutate(NETWORK_POLICY, "spec.podSelector", {"matchLabels": {"app": "other"}})
    stack = serving_stack(platform, pdb=PDB_WITHOUT_DISRUPTION, network_policy=netpol)
    every = messages("inf-stack-pdb-and-netpol", *stack)
    excluded = messages("inf-stack-pdb-and-netpol", *stack, config={"excludeFor": ["gemma-9b"]})
    assert excluded == [m for m in every if "gemma-9b" not in m] != every


def test_gcsfuse_volume_needs_the_csi_driver(platform: list[Captured]) -> None:
    assert stack_messages("inf-stack-gcsfuse-addon", platform, vllm=VLLM_ON_GCSFUSE) == []
    stack = serving_stack(with_cluster(platform, addonsConfig__gcsFuseCsiDriverConfig__enabled=False), vllm=VLLM_ON_GCSFUSE)
    assert messages("inf-stack-gcsfuse-addon", *stack) == [
        "Deployment inference/gemma-9b mounts a GCS FUSE volume but cluster cluster-gke has the GCS FUSE CSI driver off"
    ]


# ------------------------------------------------------------------------------------ identity


def test_node_service_account_roles(platform: list[Captured]) -> None:
    other = captured(
        IAM_MEMBER,
        "vllm-storage",
        {
            "project": "acme-inference-prod",
            "role": "roles/storage.admin",
            "member": "serviceAccount:vllm@x.iam.gserviceaccount.com",
        },
    )
    found = violations("inf-stack-node-sa-roles", *serving_stack(platform), node_sa_editor(platform), other)
    assert [(v.resource, v.message) for v in found] == [
        (
            "gcp:projects/iAMMember:IAMMember: cluster-nodes-editor",
            "node service account binding cluster-nodes-editor grants roles/editor; allowed: "
            "roles/artifactregistry.reader, roles/container.defaultNodeServiceAccount",
        )
    ]


def test_node_service_account_roles_granted_through_a_binding_of_members(platform: list[Captured]) -> None:
    """An IAMBinding lists the node account among its members (no single `member`)."""
    email = next(r.inputs for r in platform if r.type == CLUSTER_TYPE)["clusterAutoscaling"]["autoProvisioningDefaults"][
        "serviceAccount"
    ]
    members = ["user:ops@acme.example", f"serviceAccount:{email}"]
    for role, expected in (("roles/editor", 1), ("roles/artifactregistry.reader", 0)):
        inputs = {"project": "acme-inference-prod", "role": role, "members": members}
        binding = captured("gcp:projects/iAMBinding:IAMBinding", "nodes-binding", inputs)
        found = messages("inf-stack-node-sa-roles", *serving_stack(platform), binding)
        assert len(found) == expected and all("nodes-binding" in m for m in found), (role, found)


def test_node_sa_roles_are_configurable(platform: list[Captured]) -> None:
    config = {"allowedRoles": ["roles/container.defaultNodeServiceAccount"]}
    binding = node_role_binding(platform, "roles/artifactregistry.reader")
    assert messages("inf-stack-node-sa-roles", *serving_stack(platform), config=config) == [
        f"node service account binding {binding} grants roles/artifactregistry.reader; "
        "allowed: roles/container.defaultNodeServiceAccount"
    ]


def test_cmek_bindings_for_keys_managed_in_the_stack(platform: list[Captured]) -> None:
    stack = serving_stack(platform)
    assert messages("inf-stack-cmek-bindings", *keyed(stack)) == [
        "Bucket models: no roles/cloudkms.cryptoKeyEncrypterDecrypter binding on its KMS key for the Cloud Storage service "
        "agent in this stack"
    ]
    grant = captured(
        "gcp:kms/cryptoKeyIAMMember:CryptoKeyIAMMember",
        "models-key-gcs",
        {"cryptoKeyId": "[unknown]", "role": "roles/cloudkms.cryptoKeyEncrypterDecrypter", "member": "[unknown]"},
        deps={"cryptoKeyId": [MODELS_KEY]},
    )
    assert messages("inf-stack-cmek-bindings", *keyed(stack), grant) == [
        "Bucket models does not depend on models-key-gcs; it can be created before the key grant (403)"
    ]
    assert messages("inf-stack-cmek-bindings", *keyed(stack, grant), grant) == []
    # the Storage agent's grant on another key (named, not a dependency) does not let it use this one
    elsewhere = captured(
        "gcp:kms/cryptoKeyIAMMember:CryptoKeyIAMMember",
        "other-key-gcs",
        {
            "cryptoKeyId": "projects/p/locations/us-east5/keyRings/r/cryptoKeys/other",
            "role": "roles/cloudkms.cryptoKeyEncrypterDecrypter",
            "member": "serviceAccount:service-1@gs-project-accounts.iam.gserviceaccount.com",
        },
    )
    assert messages("inf-stack-cmek-bindings", *keyed(stack, elsewhere), elsewhere) == messages(
        "inf-stack-cmek-bindings", *keyed(stack)
    )


def test_cmek_grant_to_another_service_agent_does_not_count(platform: list[Captured]) -> None:
    """The Cloud Storage agent must hold the grant on the bucket's key: GKE's agent on the same key does not do."""
    stack = serving_stack(platform)
    no_grant = messages("inf-stack-cmek-bindings", *keyed(stack))
    for agent, expected in (("container-engine-robot", no_grant), ("gs-project-accounts", [])):
        grant = captured(
            "gcp:kms/cryptoKeyIAMMember:CryptoKeyIAMMember",
            "models-key-grant",
            {
                "cryptoKeyId": UNKNOWN,
                "role": "roles/cloudkms.cryptoKeyEncrypterDecrypter",
                "member": f"serviceAccount:service-1@{agent}.iam.gserviceaccount.com",
            },
            deps={"cryptoKeyId": [MODELS_KEY]},
        )
        assert messages("inf-stack-cmek-bindings", *keyed(stack, grant), grant) == expected, agent


def test_cmek_bindings_for_external_keys_only_on_request(platform: list[Captured]) -> None:
    stack = serving_stack(platform)
    assert messages("inf-stack-cmek-bindings", *stack) == []
    assert messages("inf-stack-cmek-bindings", *stack, config={"requireBindingsInStack": True}) == [
        "Bucket models: no roles/cloudkms.cryptoKeyEncrypterDecrypter binding on its KMS key for the Cloud Storage service "
        "agent in this stack",
        "Cluster cluster-gke: no roles/cloudkms.cryptoKeyEncrypterDecrypter binding on its KMS key for the GKE service agent "
        "in this stack",
    ]


def test_required_apis_once_the_stack_manages_apis(platform: list[Captured]) -> None:
    stack = serving_stack(platform)
    assert messages("inf-stack-required-apis", *stack) == []  # APIs enabled outside the stack
    assert messages("inf-stack-required-apis", *stack, *project_services(*PLATFORM_APIS)) == [
        "API monitoring.googleapis.com is used by kubernetes:monitoring.googleapis.com/v1:PodMonitoring but no "
        "gcp:projects/service:Service enables it",
        "API networkservices.googleapis.com is used by kubernetes:gateway.networking.k8s.io/v1:Gateway but no "
        "gcp:projects/service:Service enables it",
    ]


def test_required_api_findings_are_on_the_resources_that_use_them(platform: list[Captured]) -> None:
    stack = [*serving_stack(platform), *project_services(*PLATFORM_APIS)]
    found = violations("inf-stack-required-apis", *stack, config={"requiredApis": ["aiplatform.googleapis.com"]})
    users = {v.message.split(" is used by ")[1].split(" ")[0]: v.resource for v in found if " is used by " in v.message}
    assert users and all(resource.startswith(f"{type_}: ") for type_, resource in users.items()), users
    (from_config,) = (v for v in found if "aiplatform" in v.message)
    assert from_config.resource.startswith("pulumi:pulumi:Stack: ")  # required by config: the stack's finding


# ----------------------------------------------------------------------------------------- cost


def test_cost_prices_pools_from_the_catalog(platform: list[Captured], prod: Capture) -> None:
    """Estimate = system pool + 4x4 slice (reservation at on-demand) + spot L4 pool, at full scale, from the catalog."""
    catalog = load_catalog()
    slice_ = catalog.tpu_slice("v6e", "4x4")
    system = prod.config.cluster.system_pool  # the captured core's
    hourly = (
        catalog.machine_prices[(system.machine_type, "us-east5")].on_demand * system.max_nodes_per_zone * SYSTEM_POOL_ZONES
        + catalog.tpu_chip_prices[("v6e", "us-east5")].on_demand * slice_.chips
        + catalog.machine_prices[("g2-standard-24", "us-east5")].spot * 2
    )
    monthly = hourly * sizing.HOURS_PER_MONTH
    budget = round(monthly) - 1
    found = messages("inf-stack-cost-budget", *serving_stack(platform), config={"monthlyBudgetUsd": budget})
    assert found == [
        f"estimated {monthly:,.0f} USD/month at full scale exceeds the budget of {budget:,.0f} USD "
        f"(policy config monthlyBudgetUsd); largest pool: v6e-4x4 at "
        f"{catalog.tpu_chip_prices[('v6e', 'us-east5')].on_demand * slice_.chips * sizing.HOURS_PER_MONTH:,.0f} USD/month"
    ]
    assert messages("inf-stack-cost-budget", *serving_stack(platform), config={"monthlyBudgetUsd": budget + 2}) == []


def test_cost_reads_the_stack_budget_and_takes_the_lower(platform: list[Captured]) -> None:
    stack = serving_stack(platform)
    config = {"gke-inference:budget": '{"monthly_usd": 1000}'}
    found = messages("inf-stack-cost-budget", *stack, stack_config=config, config={"monthlyBudgetUsd": 5000})
    assert len(found) == 1 and "exceeds the budget of 1,000 USD (gke-inference:budget)" in found[0]
    assert messages("inf-stack-cost-budget", *stack) == []  # no budget anywhere: nothing to compare


def test_cost_reports_unpriced_pools(platform: list[Captured]) -> None:
    pool = mutate(GPU_POOL, "location", "us-west9")
    assert stack_messages("inf-stack-cost-budget", platform, gpu_pool=pool) == [
        "no catalog price for g2-standard-24 in us-west9: pool l4x2 is left out of the estimate"
    ]


def estimate(platform: list[Captured], gpu_pool: dict[str, Any] | None) -> list[str]:
    """The cost finding against a 1 USD budget (it states the monthly estimate) with the GPU pool given, or without it."""
    stack = serving_stack(platform, **({} if gpu_pool is None else {"gpu_pool": gpu_pool}))
    if gpu_pool is None:
        stack = [r for r in stack if r.name != NAMES["gpu_pool"]]
    return messages("inf-stack-cost-budget", *stack, stack_config={"gke-inference:budget": '{"monthly_usd": 1}'})


def fixed(**count: int) -> dict[str, Any]:
    """The GPU pool without autoscaling, sized by these inputs."""
    pool = mutate(GPU_POOL, "autoscaling", DELETE)
    for key, value in count.items():
        pool = mutate(pool, key, value)
    return pool


def test_cost_sizes_a_fixed_pool_by_its_initial_count_when_it_has_no_node_count(platform: list[Captured]) -> None:
    assert estimate(platform, fixed(initialNodeCount=2)) == estimate(platform, fixed(nodeCount=2))
    assert estimate(platform, fixed(nodeCount=2)) != estimate(platform, fixed(nodeCount=1))


def test_cost_of_a_pool_scaled_to_zero_is_nothing(platform: list[Captured]) -> None:
    assert estimate(platform, fixed(nodeCount=0)) == estimate(platform, None) != estimate(platform, fixed(nodeCount=1))


def test_stack_findings_on_excluded_resources_are_dropped(platform: list[Captured]) -> None:
    stack = serving_stack(platform, pod_monitoring=MONITORING_UNDECLARED_PORT)
    assert messages("inf-stack-gmp-podmonitoring", *stack, config={"excludeFor": ["gemma-.*"]}) == []


def test_a_serving_stack_reads_its_pools_elsewhere_and_is_not_told_it_has_none(platform: list[Captured]) -> None:
    """Under `pulumi preview` the serving stack holds the servers and a StackReference, not the pools: the joins of a
    workload to its pool (checked on `plan` over both stacks) stay quiet there, and fire without the reference."""
    servers = [
        r
        for r in serving_stack(platform, vllm=VLLM_ON_ABSENT_GPU)
        if r.type not in ("gcp:container/nodePool:NodePool", "pulumi:pulumi:StackReference")
    ]
    reference = captured("pulumi:pulumi:StackReference", "platform", {"name": "organization/gke-inference-platform/prod"})
    for policy in ("inf-stack-workload-matches-pool", "inf-stack-lws-size"):
        assert messages(policy, *servers, reference) == []
    assert messages("inf-stack-workload-matches-pool", *servers) != []
