"""Resource policies: every compliant fixture passes every policy; each one-change fixture fails with the exact message."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from fixtures import (
    BUCKET,
    BUCKET_MEMBER,
    CLUSTER_TYPE,
    COMPUTE_CLASS,
    DELETE,
    GATEWAY,
    GPU_POOL,
    HPA,
    INFERENCE_POOL,
    K8S_TYPES,
    LWS,
    NODE_POOL,
    POD_MONITORING,
    PROXY_SUBNET,
    SERVICE,
    TPU_POOL,
    VLLM,
    captured,
    messages,
    mutate,
    prod_capture,
    violations,
)
from pulumi_policy import ResourceValidationPolicy

from components import node_pools
from infra.catalog import load as load_catalog
from infra.serving.composition import PATHWAYS_NODE_IDENTITY_REASON
from infra.tooling.plan import UNKNOWN, StackFile, run
from infra.tooling.policy_runner import run as run_pack
from policies.base import EXCEPTION_ANNOTATION, EXCEPTION_METADATA
from policies.registry import POLICIES

REPO = Path(__file__).resolve().parents[2]
V6E_ZONES = ", ".join(sorted(load_catalog().tpus["v6e"].zones))
V6E_TOPOLOGIES = ", ".join(sorted(load_catalog().tpus["v6e"].shapes))
L4_MACHINES = ", ".join(sorted(load_catalog().gpus["l4"].machine_types))
CATALOG_DATE = load_catalog().as_of
VLLM_CONTAINER = "spec.template.spec.containers.0"
VLLM_POD = "spec.template.spec"
WORKER = "spec.leaderWorkerTemplate.workerTemplate.spec"


@pytest.fixture(scope="module")
def cluster() -> dict[str, Any]:
    """The prod cluster exactly as the program registers it: the compliant cluster fixture."""
    return next(r.inputs for r in prod_capture().resources if r.type == CLUSTER_TYPE)


def bases(cluster: dict[str, Any]) -> dict[str, tuple[str, dict[str, Any]]]:
    return {
        "cluster": (CLUSTER_TYPE, cluster),
        # prod's IP endpoint is private; the authorized-network rules matter where it is public (dev's default).
        "public_cluster": (
            CLUSTER_TYPE,
            {**cluster, "privateClusterConfig": {**cluster.get("privateClusterConfig", {}), "enablePrivateEndpoint": False}},
        ),
        "tpu_pool": (NODE_POOL, TPU_POOL),
        "gpu_pool": (NODE_POOL, GPU_POOL),
        "bucket": ("gcp:storage/bucket:Bucket", BUCKET),
        "bucket_member": ("gcp:storage/bucketIAMMember:BucketIAMMember", BUCKET_MEMBER),
        "proxy_subnet": ("gcp:compute/subnetwork:Subnetwork", PROXY_SUBNET),
        **{
            key: (K8S_TYPES[obj["kind"]], obj)
            for key, obj in {
                "vllm": VLLM,
                "lws": LWS,
                "hpa": HPA,
                "service": SERVICE,
                "gateway": GATEWAY,
                "inference_pool": INFERENCE_POOL,
                "compute_class": COMPUTE_CLASS,
                "pod_monitoring": POD_MONITORING,
            }.items()
        },
    }


RESOURCE_POLICIES = [p for p in POLICIES if isinstance(p, ResourceValidationPolicy)]

CASES: list[tuple[str, str, str, Any, list[str]]] = [
    # GKE security
    (
        "inf-gke-private-nodes",
        "cluster",
        "privateClusterConfig.enablePrivateNodes",
        False,
        ["privateClusterConfig.enablePrivateNodes is not true: nodes would get public IP addresses"],
    ),
    (
        "inf-gke-control-plane-restricted",
        "public_cluster",
        "masterAuthorizedNetworksConfig.cidrBlocks.0.cidrBlock",
        "0.0.0.0/0",
        ["masterAuthorizedNetworksConfig allows 0.0.0.0/0"],
    ),
    (
        "inf-gke-control-plane-restricted",
        "public_cluster",
        "masterAuthorizedNetworksConfig",
        DELETE,
        ["masterAuthorizedNetworksConfig is not set: the public control-plane endpoint accepts every address"],
    ),
    (
        "inf-gke-control-plane-restricted",
        "public_cluster",
        "masterAuthorizedNetworksConfig.gcpPublicCidrsAccessEnabled",
        True,
        ["masterAuthorizedNetworksConfig.gcpPublicCidrsAccessEnabled is true: any Google Cloud IP can reach the control plane"],
    ),
    ("inf-gke-control-plane-restricted", "public_cluster", "masterAuthorizedNetworksConfig.cidrBlocks", [], []),
    # No public IP endpoint: nothing for authorized networks to restrict (the DNS endpoint is IAM-authorised).
    ("inf-gke-control-plane-restricted", "cluster", "masterAuthorizedNetworksConfig", DELETE, []),
    ("inf-gke-shielded-nodes", "cluster", "enableShieldedNodes", False, ["enableShieldedNodes is false"]),
    (
        "inf-gke-shielded-nodes",
        "tpu_pool",
        "nodeConfig.shieldedInstanceConfig.enableSecureBoot",
        DELETE,
        ["nodeConfig.shieldedInstanceConfig.enableSecureBoot is not true"],
    ),
    (
        "inf-gke-shielded-nodes",
        "cluster",
        "clusterAutoscaling.autoProvisioningDefaults.shieldedInstanceConfig.enableSecureBoot",
        DELETE,
        [
            "clusterAutoscaling.autoProvisioningDefaults.shieldedInstanceConfig.enableSecureBoot is not true "
            "(auto-provisioned nodes boot unverified)"
        ],
    ),
    (
        "inf-gke-shielded-nodes",
        "cluster",
        "clusterAutoscaling.autoProvisioningDefaults.shieldedInstanceConfig.enableIntegrityMonitoring",
        False,
        ["clusterAutoscaling.autoProvisioningDefaults.shieldedInstanceConfig.enableIntegrityMonitoring is false"],
    ),
    # Without node auto-provisioning its defaults create no node: nothing to shield.
    ("inf-gke-shielded-nodes", "cluster", "clusterAutoscaling", {"enabled": False}, []),
    (
        "inf-gke-shielded-nodes",
        "gpu_pool",
        "nodeConfig.shieldedInstanceConfig.enableIntegrityMonitoring",
        False,
        ["nodeConfig.shieldedInstanceConfig.enableIntegrityMonitoring is false"],
    ),
    (
        "inf-gke-workload-identity",
        "cluster",
        "workloadIdentityConfig.workloadPool",
        "other.svc.id.goog",
        ["workloadIdentityConfig.workloadPool is other.svc.id.goog; expected acme-inference-prod.svc.id.goog"],
    ),
    (
        "inf-gke-workload-identity",
        "cluster",
        "workloadIdentityConfig",
        DELETE,
        ["workloadIdentityConfig.workloadPool is not set: Workload Identity is off"],
    ),
    (
        "inf-gke-workload-identity",
        "tpu_pool",
        "nodeConfig.workloadMetadataConfig.mode",
        "GCE_METADATA",
        [
            "nodeConfig.workloadMetadataConfig.mode is GCE_METADATA; expected GKE_METADATA (pods could read the node's credentials)"
        ],
    ),
    ("inf-gke-no-legacy-auth", "cluster", "enableLegacyAbac", True, ["enableLegacyAbac is true: legacy ABAC bypasses RBAC"]),
    (
        "inf-gke-no-legacy-auth",
        "cluster",
        "masterAuth.clientCertificateConfig.issueClientCertificate",
        True,
        ["masterAuth.clientCertificateConfig.issueClientCertificate is true: long-lived client certificates"],
    ),
    (
        "inf-gke-dataplane-v2",
        "cluster",
        "datapathProvider",
        "LEGACY_DATAPATH",
        ["neither datapathProvider ADVANCED_DATAPATH nor networkPolicy.enabled: NetworkPolicies are not enforced"],
    ),
    (
        "inf-gke-release-channel",
        "cluster",
        "releaseChannel.channel",
        "UNSPECIFIED",
        ["releaseChannel.channel is UNSPECIFIED; expected one of REGULAR, STABLE"],
    ),
    (
        "inf-gke-release-channel",
        "cluster",
        "maintenancePolicy",
        DELETE,
        ["maintenancePolicy is not set: upgrades may run at any time"],
    ),
    ("inf-gke-node-auto-upgrade-repair", "tpu_pool", "management.autoUpgrade", False, ["management.autoUpgrade is false"]),
    ("inf-gke-node-auto-upgrade-repair", "gpu_pool", "management.autoRepair", False, ["management.autoRepair is false"]),
    (
        "inf-gke-secrets-kms",
        "cluster",
        "databaseEncryption.state",
        "DECRYPTED",
        ["databaseEncryption.state is DECRYPTED; expected ENCRYPTED with a Cloud KMS key"],
    ),
    (
        "inf-gke-secrets-kms",
        "cluster",
        "databaseEncryption.keyName",
        "projects/p/locations/europe-west4/keyRings/r/cryptoKeys/k",
        ["databaseEncryption.keyName is in europe-west4; the cluster is in us-east5"],
    ),
    (
        "inf-gke-binary-authorization",
        "cluster",
        "binaryAuthorization.evaluationMode",
        "DISABLED",
        ["binaryAuthorization.evaluationMode is DISABLED; expected PROJECT_SINGLETON_POLICY_ENFORCE"],
    ),
    (
        "inf-gke-node-sa-not-default",
        "tpu_pool",
        "nodeConfig.serviceAccount",
        "123-compute@developer.gserviceaccount.com",
        ["nodeConfig.serviceAccount is the Compute Engine default service account 123-compute@developer.gserviceaccount.com"],
    ),
    (
        "inf-gke-node-sa-not-default",
        "gpu_pool",
        "nodeConfig.serviceAccount",
        DELETE,
        ["nodeConfig.serviceAccount is not set: nodes run as the Compute Engine default service account"],
    ),
    ("inf-gke-node-sa-not-default", "gpu_pool", "nodeConfig.serviceAccount", UNKNOWN, []),
    (
        "inf-gke-cos-containerd",
        "tpu_pool",
        "nodeConfig.imageType",
        "UBUNTU_CONTAINERD",
        ["nodeConfig.imageType is UBUNTU_CONTAINERD; expected COS_CONTAINERD"],
    ),
    ("inf-gke-cos-containerd", "tpu_pool", "nodeConfig.imageType", DELETE, []),
    (
        "inf-gke-vpc-native",
        "cluster",
        "networkingMode",
        "ROUTES",
        ["networkingMode is not VPC_NATIVE with an ipAllocationPolicy: routes-based clusters cannot use the Gateway API"],
    ),
    (
        "inf-gke-vpc-native",
        "cluster",
        "ipAllocationPolicy",
        DELETE,
        ["networkingMode is not VPC_NATIVE with an ipAllocationPolicy: routes-based clusters cannot use the Gateway API"],
    ),
    (
        "inf-gke-regional",
        "cluster",
        "location",
        "us-east5-a",
        ["location us-east5-a is a zone: a zonal control plane is a single point of failure"],
    ),
    ("inf-gke-deletion-protected", "cluster", "deletionProtection", False, ["deletionProtection is false"]),
    (
        "inf-gke-security-posture",
        "cluster",
        "enableIntranodeVisibility",
        False,
        ["enableIntranodeVisibility is not true: pod-to-pod traffic on a node is invisible to flow logs"],
    ),
    (
        "inf-gke-security-posture",
        "cluster",
        "securityPostureConfig.vulnerabilityMode",
        "VULNERABILITY_DISABLED",
        ["securityPostureConfig.vulnerabilityMode is not set: workload images are not scanned"],
    ),
    (
        "inf-gke-logging-monitoring",
        "cluster",
        "loggingConfig.enableComponents",
        ["SYSTEM_COMPONENTS"],
        ["loggingConfig.enableComponents lacks WORKLOADS"],
    ),
    ("inf-gke-logging-monitoring", "cluster", "loggingService", "none", ["loggingService or monitoringService is none"]),
    ("inf-gke-logging-monitoring", "cluster", "monitoringService", "none", ["loggingService or monitoringService is none"]),
    # TPU and GPU pools
    (
        "inf-tpu-pool-shape",
        "tpu_pool",
        "nodeConfig.machineType",
        "ct6e-standard-8t",
        ["topology 4x4 needs machine type ct6e-standard-4t; got ct6e-standard-8t"],
    ),
    (
        "inf-tpu-pool-shape",
        "tpu_pool",
        "nodeCount",
        3,
        [
            "nodeCount 3 is not a whole number of 4x4 slices (4 VMs each)",
            "nodeCount 3 but one node pool holds exactly one 4x4 slice (4 VMs)",
        ],
    ),
    (
        "inf-tpu-pool-shape",
        "tpu_pool",
        "nodeLocations",
        ["us-east5-a", "us-east5-b"],
        ["a multi-host slice lives in one zone; nodeLocations has 2"],
    ),
    (
        "inf-tpu-pool-shape",
        "tpu_pool",
        "nodeLocations",
        ["us-east5-c"],
        [f"zone us-east5-c does not offer v6e; expected one of {V6E_ZONES}"],
    ),
    (
        "inf-tpu-pool-shape",
        "tpu_pool",
        "placementPolicy.type",
        DELETE,
        ["a multi-host v6e 4x4 slice needs placementPolicy.type COMPACT"],
    ),
    (
        "inf-tpu-pool-shape",
        "tpu_pool",
        "placementPolicy.tpuTopology",
        "3x3",
        [f"placementPolicy.tpuTopology 3x3 is not a v6e topology; expected one of {V6E_TOPOLOGIES}"],
    ),
    (
        "inf-tpu-pool-shape",
        "tpu_pool",
        "nodeConfig.guestAccelerators",
        [{"type": "nvidia-l4", "count": 1}],
        ["TPU machine type ct6e-standard-4t takes no nodeConfig.guestAccelerators"],
    ),
    (
        "inf-tpu-pool-shape",
        "tpu_pool",
        "autoscaling",
        {"maxNodeCount": 6, "locationPolicy": "BALANCED"},
        [
            "autoscaling.maxNodeCount 6 is not a whole number of 4x4 slices (4 VMs each)",
            "autoscaling.locationPolicy BALANCED spreads a slice's VMs over zones; expected ANY",
        ],
    ),
    (
        "inf-gpu-pool-shape",
        "gpu_pool",
        "nodeConfig.guestAccelerators.0.type",
        "nvidia-tesla-t4",
        ["guestAccelerators type nvidia-tesla-t4 does not fit g2-standard-24, which carries nvidia-l4"],
    ),
    (
        "inf-gpu-pool-shape",
        "gpu_pool",
        "nodeConfig.guestAccelerators.0.count",
        1,
        ["guestAccelerators count 1 but g2-standard-24 carries 2 nvidia-l4"],
    ),
    (
        "inf-gpu-pool-shape",
        "gpu_pool",
        "nodeConfig.machineType",
        "n2-standard-8",
        [f"nvidia-l4 cannot attach to n2-standard-8; expected one of {L4_MACHINES}"],
    ),
    (
        "inf-gpu-pool-shape",
        "gpu_pool",
        "nodeLocations",
        ["us-east5-c"],
        [f"zone us-east5-c does not offer nvidia-l4 (catalog {CATALOG_DATE})"],
    ),
    (
        "inf-gpu-pool-shape",
        "gpu_pool",
        "nodeLocations",
        DELETE,
        ["nodeLocations is not set: no region offers nvidia-l4 in every zone"],
    ),
    (
        "inf-gpu-pool-shape",
        "gpu_pool",
        "nodeConfig.guestAccelerators.0.gpuDriverInstallationConfig",
        DELETE,
        ["gpuDriverInstallationConfig.gpuDriverVersion is unset: GKE will not install the NVIDIA driver"],
    ),
    (
        "inf-gpu-pool-shape",
        "gpu_pool",
        "nodeConfig.guestAccelerators",
        DELETE,
        ["nodeConfig.guestAccelerators is not set for nvidia-l4 on g2-standard-24"],
    ),
    # Storage
    (
        "inf-gcs-ubla",
        "bucket",
        "uniformBucketLevelAccess",
        False,
        ["uniformBucketLevelAccess is not true: object ACLs can drift from IAM"],
    ),
    (
        "inf-gcs-public-access-prevention",
        "bucket",
        "publicAccessPrevention",
        DELETE,
        ["publicAccessPrevention is unset (inherited); expected enforced"],
    ),
    ("inf-gcs-no-public-members", "bucket_member", "member", "allUsers", ["member allUsers makes the bucket public"]),
    (
        "inf-gcs-recoverability",
        "bucket",
        "forceDestroy",
        True,
        ["forceDestroy is true: destroying the stack deletes every object"],
    ),
    ("inf-gcs-recoverability", "bucket", "versioning.enabled", False, []),  # the 7-day soft delete still recovers
    (
        "inf-gcs-no-lock-outside-prod",
        "bucket",
        "retentionPolicy",
        {"isLocked": True, "retentionPeriod": 86400},
        ["retentionPolicy.isLocked is true: Bucket Lock is irreversible and this environment does not allow it"],
    ),
    (
        "inf-gcs-cmek",
        "bucket",
        "encryption",
        DELETE,
        ["encryption.defaultKmsKeyName is not set: objects use Google-managed keys"],
    ),
    ("inf-gcs-cmek", "bucket", "encryption.defaultKmsKeyName", UNKNOWN, []),
    # Gateway and autoscaling
    (
        "inf-proxy-subnet-shape",
        "proxy_subnet",
        "role",
        DELETE,
        ["role is unset; a REGIONAL_MANAGED_PROXY subnet needs role ACTIVE"],
    ),
    (
        "inf-proxy-subnet-shape",
        "proxy_subnet",
        "logConfig",
        {"aggregationInterval": "INTERVAL_5_SEC"},
        ["logConfig is set; proxy-only subnets do not support flow logs"],
    ),
    ("inf-k8s-hpa-bounds", "hpa", "spec.minReplicas", 5, ["spec.minReplicas 5 > spec.maxReplicas 4"]),
    ("inf-k8s-hpa-bounds", "hpa", "spec.minReplicas", 0, ["spec.minReplicas is 0; expected at least 1"]),
    (
        "inf-k8s-hpa-bounds",
        "hpa",
        "spec.metrics",
        [],
        ["spec.metrics is empty: the HPA falls back to CPU, which says nothing about accelerator load"],
    ),
    (
        "inf-k8s-hpa-bounds",
        "hpa",
        "spec.behavior",
        DELETE,
        ["spec.behavior.scaleDown.stabilizationWindowSeconds is not set; replicas that take minutes to load would flap"],
    ),
    (
        "inf-gateway-class",
        "gateway",
        "spec.gatewayClassName",
        "gke-l7-global-external-managed",
        [
            "spec.gatewayClassName is gke-l7-global-external-managed; expected one of gke-l7-regional-external-managed, gke-l7-rilb"
        ],
    ),
    (
        "inf-inferencepool-endpoint-picker",
        "inference_pool",
        "spec.endpointPickerRef.port",
        DELETE,
        ["spec.endpointPickerRef.port.number is not set; a Service reference needs the picker's port"],
    ),
    (
        "inf-inferencepool-endpoint-picker",
        "inference_pool",
        "spec.endpointPickerRef",
        DELETE,
        ["spec.endpointPickerRef is not set: requests are not routed by model-server load"],
    ),
    # Kubernetes workloads
    (
        "inf-k8s-no-privileged",
        "vllm",
        f"{VLLM_CONTAINER}.securityContext.privileged",
        True,
        ["pod container vllm: securityContext.privileged is true"],
    ),
    ("inf-k8s-no-privileged", "lws", f"{WORKER}.hostNetwork", True, ["worker template: hostNetwork is true"]),
    ("inf-k8s-no-privileged", "lws", f"{WORKER}.hostPID", True, ["worker template: hostPID is true"]),
    ("inf-k8s-no-privileged", "vllm", f"{VLLM_POD}.hostIPC", True, ["pod template: hostIPC is true"]),
    (
        "inf-k8s-no-privileged",
        "vllm",
        f"{VLLM_POD}.volumes",
        [{"name": "dev", "hostPath": {"path": "/dev"}}],
        ["pod template: hostPath volume dev"],
    ),
    ("inf-k8s-no-privileged", "vllm", f"{VLLM_CONTAINER}.ports.0.hostPort", 8000, ["pod container vllm: hostPort 8000"]),
    (
        "inf-k8s-capabilities",
        "vllm",
        f"{VLLM_CONTAINER}.securityContext.capabilities.add",
        ["SYS_PTRACE", "NET_ADMIN"],
        ["pod container vllm: adds capabilities NET_ADMIN, SYS_PTRACE outside the allow-list (none)"],
    ),
    (
        "inf-k8s-capabilities",
        "lws",
        f"{WORKER}.containers.0.securityContext.capabilities",
        DELETE,
        ["worker container worker: capabilities.drop does not include ALL"],
    ),
    (
        "inf-k8s-nonroot-readonly",
        "vllm",
        f"{VLLM_CONTAINER}.securityContext.runAsNonRoot",
        DELETE,
        ["pod container vllm: runAsNonRoot is not true"],
    ),
    (
        "inf-k8s-nonroot-readonly",
        "vllm",
        f"{VLLM_CONTAINER}.securityContext.readOnlyRootFilesystem",
        False,
        ["pod container vllm: readOnlyRootFilesystem is not true"],
    ),
    (
        "inf-k8s-nonroot-readonly",
        "vllm",
        f"{VLLM_CONTAINER}.securityContext.allowPrivilegeEscalation",
        DELETE,
        ["pod container vllm: allowPrivilegeEscalation is not false"],
    ),
    (
        "inf-k8s-nonroot-readonly",
        "vllm",
        f"{VLLM_POD}.securityContext.seccompProfile",
        DELETE,
        ["pod container vllm: seccompProfile.type is not RuntimeDefault"],
    ),
    (
        "inf-k8s-image-pinned",
        "vllm",
        f"{VLLM_CONTAINER}.image",
        "vllm/vllm-openai:latest",
        ["pod container vllm: image vllm/vllm-openai:latest is not pinned (tag latest)"],
    ),
    (
        "inf-k8s-image-pinned",
        "lws",
        f"{WORKER}.containers.0.image",
        "localhost:5000/pathways/server",
        ["worker container worker: image localhost:5000/pathways/server is not pinned (no tag)"],
    ),
    (
        "inf-k8s-image-pinned",
        "vllm",
        f"{VLLM_CONTAINER}.image",
        "vllm/vllm-openai:v0.11.0",
        ["pod container vllm: image vllm/vllm-openai:v0.11.0 has no @sha256 digest"],
    ),
    ("inf-k8s-resources", "vllm", f"{VLLM_CONTAINER}.resources.requests.cpu", DELETE, ["pod container vllm: no cpu request"]),
    ("inf-k8s-resources", "vllm", f"{VLLM_CONTAINER}.resources.limits.memory", DELETE, ["pod container vllm: no memory limit"]),
    (
        "inf-k8s-resources",
        "vllm",
        f"{VLLM_CONTAINER}.resources.requests.[nvidia.com/gpu]",
        "1",
        ["pod container vllm: nvidia.com/gpu request 1 differs from its limit 2"],
    ),
    (
        "inf-k8s-resources",
        "vllm",
        f"{VLLM_CONTAINER}.resources",
        {"requests": {"cpu": "4", "memory": "16Gi"}, "limits": {"memory": "16Gi"}},
        ["pod template selects accelerator nodes but no container has a google.com/tpu or nvidia.com/gpu limit"],
    ),
    ("inf-k8s-probes", "vllm", f"{VLLM_CONTAINER}.readinessProbe", DELETE, ["pod container vllm: no readinessProbe"]),
    (
        "inf-k8s-probes",
        "vllm",
        f"{VLLM_CONTAINER}.livenessProbe",
        {"httpGet": {"path": "/health", "port": "http"}},
        ["pod container vllm: readinessProbe and livenessProbe are identical; a slow model kills the pod instead of draining it"],
    ),
    (
        "inf-k8s-probes",
        "lws",
        f"{WORKER}.containers.0.startupProbe",
        DELETE,
        ["worker container worker: no startupProbe; model loading takes minutes on accelerator pods"],
    ),
    (
        "inf-k8s-sa-token",
        "vllm",
        f"{VLLM_POD}.automountServiceAccountToken",
        DELETE,
        ["pod template: automountServiceAccountToken is not false"],
    ),
    (
        "inf-k8s-sa-token",
        "lws",
        f"{WORKER}.serviceAccountName",
        "default",
        ["worker template: runs as the default service account; expected a dedicated Kubernetes service account"],
    ),
    (
        "inf-k8s-namespace",
        "vllm",
        "metadata.namespace",
        DELETE,
        ["namespace is unset; workloads belong in a dedicated namespace, not default"],
    ),
    (
        "inf-k8s-namespace",
        "pod_monitoring",
        "metadata.namespace",
        "default",
        ["namespace is default; workloads belong in a dedicated namespace, not default"],
    ),
    (
        "inf-k8s-namespace",
        "service",
        "metadata.namespace",
        "default",
        ["namespace is default; workloads belong in a dedicated namespace, not default"],
    ),
    (
        "inf-k8s-service-type",
        "service",
        "spec.type",
        "LoadBalancer",
        ["spec.type LoadBalancer exposes the pods beside the Gateway; expected ClusterIP behind an HTTPRoute"],
    ),
    (
        "inf-k8s-cr-spec-camelcase",
        "compute_class",
        "spec.when_unsatisfiable",
        "DoNotScaleUp",
        ["spec.when_unsatisfiable is snake_case; the API prunes or rejects it (expected whenUnsatisfiable)"],
    ),
    ("inf-k8s-cr-spec-camelcase", "lws", "spec.leaderWorkerTemplate.workerTemplate.metadata.labels.my_label", "x", []),
    (
        "inf-k8s-no-secret-env-literals",
        "vllm",
        f"{VLLM_CONTAINER}.env.0",
        {"name": "HF_TOKEN", "value": "hf_abc"},
        ["pod container vllm: env HF_TOKEN holds a literal value; use valueFrom.secretKeyRef"],
    ),
]


def resource(cluster: dict[str, Any], base: str, path: str | None = None, value: Any = None, *, protect: bool = True) -> Any:
    type_, inputs = bases(cluster)[base]
    if path is not None:
        inputs = mutate(inputs, path, value)
    return captured(type_, base.replace("_", "-"), inputs, protect=protect)


@pytest.mark.parametrize("base", sorted(bases({})))
def test_compliant_fixture_passes_every_resource_policy(cluster: dict[str, Any], base: str) -> None:
    settings = {p.name: "mandatory" for p in RESOURCE_POLICIES}
    assert run_pack([resource(cluster, base)], RESOURCE_POLICIES, settings) == []


@pytest.mark.parametrize(("policy", "base", "path", "value", "expected"), CASES, ids=[f"{c[0]}:{c[2]}={c[3]!r}" for c in CASES])
def test_one_change_gives_the_exact_message(
    cluster: dict[str, Any], policy: str, base: str, path: str, value: Any, expected: list[str]
) -> None:
    assert messages(policy, resource(cluster, base, path, value)) == expected


def test_every_resource_policy_has_a_violating_case() -> None:
    covered = {policy for policy, *_, expected in CASES if expected}
    assert covered == {p.name for p in RESOURCE_POLICIES} - {"inf-stateful-protected"}  # options: tested below


def test_protect_option(cluster: dict[str, Any]) -> None:
    assert messages("inf-gke-deletion-protected", resource(cluster, "cluster", protect=False)) == [
        "the Pulumi protect option is off: a replacing change would delete the cluster and every workload on it"
    ]
    for base, kind in (("cluster", "Cluster"), ("tpu_pool", "NodePool"), ("bucket", "Bucket"), ("proxy_subnet", "Subnetwork")):
        assert messages("inf-stateful-protected", resource(cluster, base, protect=False)) == [
            f"{kind} without the Pulumi protect option: a replacing change or a destroy would delete it"
        ]
    system_pool = mutate(mutate(TPU_POOL, "nodeConfig.machineType", "e2-standard-4"), "placementPolicy", DELETE)
    node_subnet = mutate(PROXY_SUBNET, "purpose", "PRIVATE")
    assert messages("inf-stateful-protected", captured(NODE_POOL, "system", system_pool)) == []
    assert messages("inf-stateful-protected", captured("gcp:compute/subnetwork:Subnetwork", "nodes", node_subnet)) == []


def test_tpu_limit_must_be_chips_of_one_vm(cluster: dict[str, Any]) -> None:
    chips = ", ".join(str(n) for n in sorted(set(load_catalog().tpus["v6e"].machine_types.values())))
    lws = mutate(LWS, f"{WORKER}.nodeSelector", {"cloud.google.com/gke-tpu-accelerator": "tpu-v6e-slice"})
    assert messages("inf-k8s-resources", captured(K8S_TYPES["LeaderWorkerSet"], "lws", lws)) == []
    for key in ("requests", "limits"):
        lws = mutate(lws, f"{WORKER}.containers.0.resources.{key}.[google.com/tpu]", "3")
    assert messages("inf-k8s-resources", captured(K8S_TYPES["LeaderWorkerSet"], "lws", lws)) == [
        f"worker template: google.com/tpu limit 3 is not the chips of one VM of tpu-v6e-slice ({chips})"
    ]


def test_config_parameters_change_the_verdict(cluster: dict[str, Any]) -> None:
    stable_only = {"allowedChannels": ["STABLE"]}
    regular = resource(cluster, "cluster", "releaseChannel.channel", "REGULAR")
    assert messages("inf-gke-release-channel", regular, config=stable_only) == [
        "releaseChannel.channel is REGULAR; expected one of STABLE"
    ]
    unversioned = resource(cluster, "bucket", "versioning.enabled", False)
    assert messages("inf-gcs-recoverability", unversioned, config={"minSoftDeleteSeconds": 2592000}) == [
        "versioning is off and soft delete keeps objects 604800 s; expected versioning or at least 2592000 s"
    ]
    locked = resource(cluster, "bucket", "retentionPolicy", {"isLocked": True})
    assert messages("inf-gcs-no-lock-outside-prod", locked, config={"allowBucketLock": True}) == []
    tagged = resource(cluster, "vllm", f"{VLLM_CONTAINER}.image", "vllm/vllm-openai:v0.11.0")
    assert messages("inf-k8s-image-pinned", tagged, config={"requireDigest": False}) == []
    net_admin = resource(cluster, "vllm", f"{VLLM_CONTAINER}.securityContext.capabilities.add", ["NET_ADMIN"])
    assert messages("inf-k8s-capabilities", net_admin, config={"allowedCapabilities": ["NET_ADMIN"]}) == []
    no_token = resource(cluster, "vllm", f"{VLLM_POD}.automountServiceAccountToken", DELETE)
    assert messages("inf-k8s-sa-token", no_token, config={"allowTokenFor": ["vllm"]}) == []
    classic = resource(cluster, "gateway", "spec.gatewayClassName", "gke-l7-gxlb")
    assert messages("inf-gateway-class", classic, config={"allowedClasses": ["gke-l7-gxlb"]}) == []


def test_public_members_in_bindings_and_policies(cluster: dict[str, Any]) -> None:
    binding = {"bucket": "b", "role": "roles/storage.objectViewer", "members": ["group:ml@acme.example", "allAuthenticatedUsers"]}
    policy = {"bucket": "b", "policyData": json.dumps({"bindings": [{"role": "roles/storage.admin", "members": ["allUsers"]}]})}
    assert messages("inf-gcs-no-public-members", captured("gcp:storage/bucketIAMBinding:BucketIAMBinding", "b", binding)) == [
        "member allAuthenticatedUsers makes the bucket public"
    ]
    assert messages("inf-gcs-no-public-members", captured("gcp:storage/bucketIAMPolicy:BucketIAMPolicy", "p", policy)) == [
        "member allUsers makes the bucket public"
    ]


def test_snake_case_cr_spec_names_the_camel_case_field() -> None:
    lws = {**LWS, "spec": {"leader_worker_template": LWS["spec"]["leaderWorkerTemplate"]}}
    assert messages("inf-k8s-cr-spec-camelcase", captured(K8S_TYPES["LeaderWorkerSet"], "lws", lws)) == [
        "spec.leader_worker_template is snake_case; the API prunes or rejects it (expected leaderWorkerTemplate)"
    ]
    typed = captured(K8S_TYPES["Deployment"], "d", mutate(VLLM, "spec.template.spec.node_selector", {}))
    assert messages("inf-k8s-cr-spec-camelcase", typed) == []  # built-in kinds are translated by the typed SDK


# ---------------------------------------------------------------------------------- exemptions


def test_name_patterns_exclude_and_include(cluster: dict[str, Any]) -> None:
    bad = resource(cluster, "cluster", "privateClusterConfig.enablePrivateNodes", False)
    expected = ["privateClusterConfig.enablePrivateNodes is not true: nodes would get public IP addresses"]
    assert messages("inf-gke-private-nodes", bad, config={"excludeFor": ["cluster"]}) == []
    assert messages("inf-gke-private-nodes", bad, config={"excludeFor": ["CLUSTER"]}) == expected
    assert messages("inf-gke-private-nodes", bad, config={"excludeFor": ["CLUSTER"], "ignoreCase": True}) == []
    assert messages("inf-gke-private-nodes", bad, config={"includeFor": ["other-.*"]}) == []
    assert messages("inf-gke-private-nodes", bad, config={"includeFor": ["clu.*"]}) == expected


def test_kubernetes_exemption_needs_an_annotated_reason(cluster: dict[str, Any]) -> None:
    caps = f"{VLLM_CONTAINER}.securityContext.capabilities.add"
    key = EXCEPTION_ANNOTATION.format(policy="inf-k8s-capabilities")
    unexplained = captured(K8S_TYPES["Deployment"], "gemma-9b", mutate(VLLM, caps, ["SYS_PTRACE"]))
    assert messages("inf-k8s-capabilities", unexplained, config={"excludeFor": ["gemma-9b"]}) == [
        f"excluded by config but annotation {key} gives no reason; the exception does not apply",
        "pod container vllm: adds capabilities SYS_PTRACE outside the allow-list (none)",
    ]
    blank = mutate(mutate(VLLM, caps, ["SYS_PTRACE"]), f"metadata.annotations.[{key}]", "  ")
    assert (
        len(
            messages(
                "inf-k8s-capabilities", captured(K8S_TYPES["Deployment"], "gemma-9b", blank), config={"excludeFor": ["gemma-9b"]}
            )
        )
        == 2
    )
    explained = mutate(blank, f"metadata.annotations.[{key}]", "py-spy profiling in staging; INFRA-123")
    assert (
        messages(
            "inf-k8s-capabilities", captured(K8S_TYPES["Deployment"], "gemma-9b", explained), config={"excludeFor": ["gemma-9b"]}
        )
        == []
    )
    # The annotation alone exempts nothing: the workload must also be excluded by the environment's config.
    assert messages("inf-k8s-capabilities", captured(K8S_TYPES["Deployment"], "gemma-9b", explained)) == [
        "pod container vllm: adds capabilities SYS_PTRACE outside the allow-list (none)"
    ]


GCE_METADATA_FOUND = (
    "nodeConfig.workloadMetadataConfig.mode is GCE_METADATA; expected GKE_METADATA (pods could read the node's credentials)"
)


def test_workload_identity_exception_is_a_tpu_pool_naming_it_with_a_reason() -> None:
    """A TPU pool on GCE_METADATA passes only when its metadata names the exception with a reason (the Pathways pools
    do); without it, with a blank reason, on a GPU pool or with the mode unset, the policy still fires."""
    policy = "inf-gke-workload-identity"
    key = EXCEPTION_METADATA.format(policy=policy)
    assert key == node_pools.EXCEPTION_METADATA.format(policy=node_pools.WORKLOAD_IDENTITY_POLICY)  # what the program writes
    on_gce = mutate(TPU_POOL, "nodeConfig.workloadMetadataConfig.mode", "GCE_METADATA")
    pathways = mutate(on_gce, f"nodeConfig.metadata.[{key}]", PATHWAYS_NODE_IDENTITY_REASON)
    assert messages(policy, captured(NODE_POOL, "v6e-4x4", pathways)) == []
    assert messages(policy, captured(NODE_POOL, "v6e-4x4", on_gce)) == [GCE_METADATA_FOUND]
    blank = mutate(on_gce, f"nodeConfig.metadata.[{key}]", " ")
    assert messages(policy, captured(NODE_POOL, "v6e-4x4", blank)) == [GCE_METADATA_FOUND]
    named = f"; nodeConfig.metadata.{key} names an exception, which only a TPU pool on GCE_METADATA may take"
    gpu = mutate(
        mutate(GPU_POOL, "nodeConfig.workloadMetadataConfig.mode", "GCE_METADATA"),
        f"nodeConfig.metadata.[{key}]",
        PATHWAYS_NODE_IDENTITY_REASON,
    )
    assert messages(policy, captured(NODE_POOL, "l4x2", gpu)) == [GCE_METADATA_FOUND + named]
    unset = mutate(pathways, "nodeConfig.workloadMetadataConfig", DELETE)
    assert messages(policy, captured(NODE_POOL, "v6e-4x4", unset)) == [
        "nodeConfig.workloadMetadataConfig.mode is unset; expected GKE_METADATA (pods could read the node's credentials)" + named
    ]


def test_rendered_pathways_pools_pass_every_resource_policy() -> None:
    """staging's Pathways pools as the program registers them (GCE_METADATA, the named exception) pass every policy."""
    capture = run(StackFile.read(REPO / "stacks" / "Pulumi.staging.yaml"))
    pools = [r for r in capture.resources if r.type == NODE_POOL and r.name.startswith("v6e-2x4")]
    assert pools and all(p.inputs["nodeConfig"]["workloadMetadataConfig"]["mode"] == "GCE_METADATA" for p in pools)
    settings = {p.name: "mandatory" for p in RESOURCE_POLICIES}
    found = run_pack([captured(NODE_POOL, p.name, p.inputs, protect=True) for p in pools], RESOURCE_POLICIES, settings)
    assert found == []


def test_other_resource_types_are_not_applicable(cluster: dict[str, Any]) -> None:
    bucket = resource(cluster, "bucket", "uniformBucketLevelAccess", False)
    assert messages("inf-gke-private-nodes", bucket) == []
    assert messages("inf-k8s-no-privileged", resource(cluster, "hpa")) == []


def test_violations_carry_policy_resource_and_enforcement(cluster: dict[str, Any]) -> None:
    [found] = violations("inf-gke-regional", resource(cluster, "cluster", "location", "us-east5-a"))
    assert (found.policy, found.resource, found.enforcement, found.severity) == (
        "inf-gke-regional",
        f"{CLUSTER_TYPE}: cluster",
        "mandatory",
        "medium",
    )
