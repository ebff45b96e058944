"""Compliant resources as the engine receives them (camelCase inputs), and a harness that runs one policy on them.

The harness goes through ``infra.tooling.policy_runner`` (protobuf Struct -> floats, ``unknown_checking_proxy``,
SDK argument types), so tests see exactly what the pack sees in a plan or a preview.
"""

from __future__ import annotations

import copy
import dataclasses
import functools
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from infra import sizing
from infra.catalog import load as load_catalog
from infra.tooling.plan import Capture, Captured, StackFile
from infra.tooling.plan import run as capture
from infra.tooling.policy_runner import Violation, run
from policies.registry import POLICIES

BY_NAME = {p.name: p for p in POLICIES}


class _Delete:
    """`mutate`'s value for "remove the key"; its repr is stable, so test ids that show it are the same every run."""

    def __repr__(self) -> str:
        return "DELETE"


DELETE = _Delete()
"""Mutation value that removes the key."""

PROJECT = "acme-test"
URN = "urn:pulumi:test::gke-inference::{type}::{name}"
PROD_STACK = Path(__file__).resolve().parents[2] / "stacks" / "Pulumi.prod.yaml"


def captured(
    type_: str,
    name: str,
    inputs: Mapping[str, Any],
    *,
    protect: bool = False,
    deps: Mapping[str, Sequence[Captured]] | None = None,
    depends_on: Sequence[Captured] = (),
    parent: str | None = None,
) -> Captured:
    """A resource as the plan captures it; `deps` are property dependencies (input -> resources)."""
    property_dependencies = {k: [d.urn for d in v] for k, v in (deps or {}).items()}
    return Captured(
        urn=URN.format(type=type_, name=name),
        type=type_,
        name=name,
        custom=True,
        parent=parent,
        dependencies=sorted({u for urns in property_dependencies.values() for u in urns} | {d.urn for d in depends_on}),
        provider=None,
        inputs=copy.deepcopy(dict(inputs)),
        options={"protect": protect, "ignoreChanges": [], "deleteBeforeReplace": False, "additionalSecretOutputs": []},
        property_dependencies=property_dependencies,
    )


def mutate(value: Mapping[str, Any], path: str, new: Any) -> dict[str, Any]:
    """A deep copy with `path` ('a.b.0.c'; keys with dots in [brackets]) set to `new`, or removed for DELETE."""
    out = copy.deepcopy(dict(value))
    keys = _keys(path)
    node: Any = out
    for key in keys[:-1]:
        node = node[int(key)] if isinstance(node, list) else node.setdefault(key, {})
    last = keys[-1]
    if isinstance(node, list):
        node[int(last)] = new
    elif new is DELETE:
        node.pop(last, None)
    else:
        node[last] = new
    return out


def replaced(
    stack: Sequence[Captured], type_: str, name: str, inputs: Mapping[str, Any] | None = None, **options: Any
) -> list[Captured]:
    """The stack with one resource's inputs and/or options replaced; its place and dependencies are kept."""
    (target,) = (r for r in stack if (r.type, r.name) == (type_, name))
    new = dataclasses.replace(
        target, inputs=dict(target.inputs if inputs is None else inputs), options={**target.options, **options}
    )
    return [new if r is target else r for r in stack]


def with_cluster(platform: Sequence[Captured], **changes: Any) -> list[Captured]:
    """The platform with the cluster's inputs changed ('a.b' paths as `a__b` keywords)."""
    cluster = next(r for r in platform if r.type == CLUSTER_TYPE)
    inputs = cluster.inputs
    for path, value in changes.items():
        inputs = mutate(inputs, path.replace("__", "."), value)
    return replaced(platform, cluster.type, cluster.name, inputs)


def _keys(path: str) -> list[str]:
    return [bracketed or plain for bracketed, plain in re.findall(r"\[([^\]]+)\]|([^.\[]+)", path)]


def violations(
    policy: str,
    *resources: Captured,
    config: Mapping[str, Any] | None = None,
    stack_config: Mapping[str, str] | None = None,
) -> list[Violation]:
    """What one policy (at mandatory) reports for these resources."""
    settings = {policy: {"enforcementLevel": "mandatory", **(config or {})}}
    return run(list(resources), [BY_NAME[policy]], settings, stack_config)


def messages(policy: str, *resources: Captured, **kwargs: Any) -> list[str]:
    return [v.message for v in violations(policy, *resources, **kwargs)]


# ------------------------------------------------------------------------------- GCP resources

SA_EMAIL = f"inference-test-nodes@{PROJECT}.iam.gserviceaccount.com"


def node_config(machine_type: str, **extra: Any) -> dict[str, Any]:
    return {
        "machineType": machine_type,
        "serviceAccount": SA_EMAIL,
        "imageType": "COS_CONTAINERD",
        "workloadMetadataConfig": {"mode": "GKE_METADATA"},
        "shieldedInstanceConfig": {"enableSecureBoot": True, "enableIntegrityMonitoring": True},
        **extra,
    }


TPU_POOL: dict[str, Any] = {
    "name": "v6e-4x4",
    "cluster": "inference-test",
    "location": "us-east5",
    "nodeLocations": ["us-east5-b"],
    "nodeCount": 4,
    "placementPolicy": {"type": "COMPACT", "tpuTopology": "4x4"},
    "management": {"autoRepair": True, "autoUpgrade": True},
    "nodeConfig": node_config(
        "ct6e-standard-4t",
        reservationAffinity={
            "consumeReservationType": "SPECIFIC_RESERVATION",
            "key": "compute.googleapis.com/reservation-name",
            "values": ["v6e-4x4-test"],
        },
        labels={"cloud.google.com/compute-class": "tpu-v6e-4x4"},
        taints=[{"key": "cloud.google.com/compute-class", "value": "tpu-v6e-4x4", "effect": "NO_SCHEDULE"}],
    ),
}

GPU_POOL: dict[str, Any] = {
    "name": "l4x2",
    "cluster": "inference-test",
    "location": "us-east5",
    "nodeLocations": ["us-east5-a"],
    "autoscaling": {"minNodeCount": 0, "maxNodeCount": 2, "locationPolicy": "ANY"},
    "management": {"autoRepair": True, "autoUpgrade": True},
    "nodeConfig": node_config(
        "g2-standard-24",
        spot=True,
        guestAccelerators=[{"type": "nvidia-l4", "count": 2, "gpuDriverInstallationConfig": {"gpuDriverVersion": "LATEST"}}],
    ),
}

BUCKET: dict[str, Any] = {
    "name": "acme-test-models",
    "location": "US-EAST5",
    "uniformBucketLevelAccess": True,
    "publicAccessPrevention": "enforced",
    "versioning": {"enabled": True},
    "softDeletePolicy": {"retentionDurationSeconds": 604800},
    "encryption": {"defaultKmsKeyName": "projects/acme-test/locations/us-east5/keyRings/gcs/cryptoKeys/models"},
    "forceDestroy": False,
}
BUCKET_MEMBER: dict[str, Any] = {
    "bucket": "acme-test-models",
    "role": "roles/storage.objectViewer",
    "member": "principal://iam.googleapis.com/projects/1/locations/global/workloadIdentityPools/acme-test.svc.id.goog/subject/ns/inference/sa/vllm",
}
CACHE: dict[str, Any] = {"bucket": "acme-test-models", "zone": "us-east5-b", "ttl": "86400s"}
PROXY_SUBNET: dict[str, Any] = {
    "name": "inference-test-proxy-only",
    "region": "us-east5",
    "network": "network-vpc-id",
    "ipCidrRange": "10.0.16.0/23",
    "purpose": "REGIONAL_MANAGED_PROXY",
    "role": "ACTIVE",
}

# ---------------------------------------------------------------------------- Kubernetes objects

DIGEST = "sha256:" + "0" * 64
SLICE = load_catalog().tpu_slice("v6e", TPU_POOL["placementPolicy"]["tpuTopology"], TPU_POOL["nodeConfig"]["machineType"])
"""The slice TPU_POOL forms: the LWS fixture's size and TPU limit are derived from it, as the platform derives them."""


def container(name: str, image: str, *, port: str = "http", number: int = 8000, **limits: str) -> dict[str, Any]:
    """A container that passes every workload policy: pinned, non-root, read-only, probed, sized."""
    probe = {"httpGet": {"path": "/health", "port": port}}
    return {
        "name": name,
        "image": f"{image}@{DIGEST}",
        "ports": [{"name": port, "containerPort": number}],
        "env": [{"name": "HF_TOKEN", "valueFrom": {"secretKeyRef": {"name": "hf", "key": "token"}}}],
        "securityContext": {
            "allowPrivilegeEscalation": False,
            "readOnlyRootFilesystem": True,
            "runAsNonRoot": True,
            "capabilities": {"drop": ["ALL"]},
        },
        "resources": {"requests": {"cpu": "4", "memory": "16Gi", **limits}, "limits": {"memory": "16Gi", **limits}},
        "readinessProbe": probe,
        "livenessProbe": {"tcpSocket": {"port": port}},
        "startupProbe": {**probe, "failureThreshold": 60, "periodSeconds": 10},
    }


def pod_spec(*containers: dict[str, Any], selector: Mapping[str, str] | None = None) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "serviceAccountName": "serving",
        "automountServiceAccountToken": False,
        "securityContext": {"seccompProfile": {"type": "RuntimeDefault"}, "runAsUser": 10001},
        "containers": list(containers),
    }
    if selector:
        spec["nodeSelector"] = dict(selector)
    return spec


VLLM: dict[str, Any] = {
    "apiVersion": "apps/v1",
    "kind": "Deployment",
    "metadata": {"name": "gemma-9b", "namespace": "inference"},
    "spec": {
        "replicas": 1,
        "selector": {"matchLabels": {"app": "gemma-9b"}},
        "template": {
            "metadata": {"labels": {"app": "gemma-9b"}},
            "spec": pod_spec(
                container("vllm", "vllm/vllm-openai:v0.11.0", port="http", **{"nvidia.com/gpu": "2"}),
                selector={"cloud.google.com/gke-accelerator": "nvidia-l4"},
            ),
        },
    },
}

LWS: dict[str, Any] = {
    "apiVersion": "leaderworkerset.x-k8s.io/v1",
    "kind": "LeaderWorkerSet",
    "metadata": {"name": "llama-405b", "namespace": "inference"},
    "spec": {
        "replicas": 1,
        "leaderWorkerTemplate": {
            "size": sizing.lws_group_size(SLICE),
            "leaderTemplate": {
                "metadata": {"labels": {"app": "llama-405b"}},
                "spec": pod_spec(
                    {
                        **container(
                            "pathways-rm",
                            "us-docker.pkg.dev/cloud-tpu-v2-images/pathways/server:jax-0.5.3",
                            port="metrics",
                            number=9100,
                        ),
                        "args": [
                            "--server_port=29001",
                            f"--instance_count={sizing.pathways_flags(SLICE).instance_count}",
                            f"--instance_type={sizing.pathways_flags(SLICE).instance_type}",
                        ],
                    },
                    selector={"cloud.google.com/compute-class": "tpu-v6e-4x4"},
                ),
            },
            "workerTemplate": {
                "metadata": {"labels": {"app": "llama-405b-worker"}},
                "spec": pod_spec(
                    container(
                        "worker",
                        "us-docker.pkg.dev/cloud-tpu-v2-images/pathways/server:jax-0.5.3",
                        port="worker",
                        number=29005,
                        **{"google.com/tpu": str(SLICE.chips_per_vm)},
                    ),
                    selector={"cloud.google.com/compute-class": "tpu-v6e-4x4"},
                ),
            },
        },
    },
}

COMPUTE_CLASS: dict[str, Any] = {
    "apiVersion": "cloud.google.com/v1",
    "kind": "ComputeClass",
    "metadata": {"name": "tpu-v6e-4x4"},
    "spec": {
        "priorities": [
            {"tpu": {"type": "tpu-v6e-slice", "count": 4, "topology": "4x4"}, "reservations": {"affinity": "AnyBestEffort"}}
        ],
        "nodePoolAutoCreation": {"enabled": False},
        "whenUnsatisfiable": "DoNotScaleUp",
    },
}

HPA: dict[str, Any] = {
    "apiVersion": "autoscaling/v2",
    "kind": "HorizontalPodAutoscaler",
    "metadata": {"name": "gemma-9b", "namespace": "inference"},
    "spec": {
        "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "gemma-9b"},
        "minReplicas": 1,
        "maxReplicas": 4,
        "metrics": [
            {
                "type": "Pods",
                "pods": {
                    "metric": {"name": "prometheus.googleapis.com|vllm:num_requests_waiting|gauge"},
                    "target": {"type": "AverageValue", "averageValue": "5"},
                },
            }
        ],
        "behavior": {"scaleDown": {"stabilizationWindowSeconds": 300}},
    },
}

POD_MONITORING: dict[str, Any] = {
    "apiVersion": "monitoring.googleapis.com/v1",
    "kind": "PodMonitoring",
    "metadata": {"name": "gemma-9b", "namespace": "inference"},
    "spec": {
        "selector": {"matchLabels": {"app": "gemma-9b"}},
        "endpoints": [{"port": "http", "path": "/metrics", "interval": "15s"}],
    },
}

SERVICE: dict[str, Any] = {
    "apiVersion": "v1",
    "kind": "Service",
    "metadata": {"name": "gemma-9b", "namespace": "inference"},
    "spec": {"type": "ClusterIP", "selector": {"app": "gemma-9b"}, "ports": [{"port": 8000, "targetPort": "http"}]},
}
GATEWAY: dict[str, Any] = {
    "apiVersion": "gateway.networking.k8s.io/v1",
    "kind": "Gateway",
    "metadata": {"name": "inference", "namespace": "inference"},
    "spec": {"gatewayClassName": "gke-l7-rilb", "listeners": [{"name": "http", "port": 80, "protocol": "HTTP"}]},
}
INFERENCE_POOL: dict[str, Any] = {
    "apiVersion": "inference.networking.k8s.io/v1",
    "kind": "InferencePool",
    "metadata": {"name": "gemma-9b", "namespace": "inference"},
    "spec": {
        "selector": {"matchLabels": {"app": "gemma-9b"}},
        "targetPorts": [{"number": 8000}],
        "endpointPickerRef": {"name": "gemma-9b-epp", "port": {"number": 9002}},
    },
}
PDB: dict[str, Any] = {
    "apiVersion": "policy/v1",
    "kind": "PodDisruptionBudget",
    "metadata": {"name": "serving", "namespace": "inference"},
    "spec": {"maxUnavailable": 1, "selector": {"matchExpressions": [{"key": "app", "operator": "Exists"}]}},
}
NETWORK_POLICY: dict[str, Any] = {
    "apiVersion": "networking.k8s.io/v1",
    "kind": "NetworkPolicy",
    "metadata": {"name": "serving", "namespace": "inference"},
    "spec": {"podSelector": {}, "policyTypes": ["Ingress"]},
}

K8S_TYPES = {
    "Deployment": "kubernetes:apps/v1:Deployment",
    "LeaderWorkerSet": "kubernetes:leaderworkerset.x-k8s.io/v1:LeaderWorkerSet",
    "ComputeClass": "kubernetes:cloud.google.com/v1:ComputeClass",
    "HorizontalPodAutoscaler": "kubernetes:autoscaling/v2:HorizontalPodAutoscaler",
    "PodMonitoring": "kubernetes:monitoring.googleapis.com/v1:PodMonitoring",
    "Service": "kubernetes:core/v1:Service",
    "Gateway": "kubernetes:gateway.networking.k8s.io/v1:Gateway",
    "InferencePool": "kubernetes:inference.networking.k8s.io/v1:InferencePool",
    "PodDisruptionBudget": "kubernetes:policy/v1:PodDisruptionBudget",
    "NetworkPolicy": "kubernetes:networking.k8s.io/v1:NetworkPolicy",
}


def k8s(obj: Mapping[str, Any], name: str | None = None) -> Captured:
    return captured(K8S_TYPES[obj["kind"]], name or obj["metadata"]["name"], obj)


CLUSTER_TYPE = "gcp:container/cluster:Cluster"
NODE_POOL = "gcp:container/nodePool:NodePool"
BUCKET_TYPE = "gcp:storage/bucket:Bucket"


NAMES = {"tpu_pool": "cluster-v6e-4x4", "gpu_pool": "cluster-l4x2", "bucket": "models", "bucket_member": "models-reader"}
"""The resource names `serving_stack` gives the GCP fixtures it adds (a Kubernetes object's is its metadata.name)."""
PROXY_ONLY_SUBNET = "network-proxy-only"
"""The captured platform's proxy-only subnet (the Gateway's prerequisite)."""


def serving_stack(platform: Sequence[Captured], **overrides: Mapping[str, Any]) -> list[Captured]:
    """The captured platform plus accelerator pools, model storage and a serving layer that pass every policy.

    `overrides` replaces a fixture by its name (tpu_pool, gpu_pool, bucket, cache, vllm, lws, compute_class,
    hpa, pod_monitoring, service, gateway, inference_pool, pdb, network_policy).
    """
    parts: dict[str, Mapping[str, Any]] = {
        "tpu_pool": TPU_POOL,
        "gpu_pool": GPU_POOL,
        "bucket": BUCKET,
        "cache": CACHE,
        "vllm": VLLM,
        "lws": LWS,
        "compute_class": COMPUTE_CLASS,
        "hpa": HPA,
        "pod_monitoring": POD_MONITORING,
        "service": SERVICE,
        "gateway": GATEWAY,
        "inference_pool": INFERENCE_POOL,
        "pdb": PDB,
        "network_policy": NETWORK_POLICY,
    }
    unknown = set(overrides) - set(parts)
    assert not unknown, unknown
    parts.update(overrides)
    cluster = next(r for r in platform if r.type == CLUSTER_TYPE)
    account = next(r for r in platform if r.type == "gcp:serviceaccount/account:Account")
    email = cluster.inputs["clusterAutoscaling"]["autoProvisioningDefaults"]["serviceAccount"]
    pools = [
        captured(
            NODE_POOL,
            NAMES[key],
            mutate(mutate(parts[key], "cluster", cluster.inputs["name"]), "nodeConfig.serviceAccount", email),
            protect=True,
            deps={"cluster": [cluster], "nodeConfig": [account]},
        )
        for key in ("tpu_pool", "gpu_pool")
    ]
    bucket = captured(BUCKET_TYPE, NAMES["bucket"], parts["bucket"], protect=True)
    storage = [
        bucket,
        captured("gcp:storage/anywhereCache:AnywhereCache", "models-us-east5-b", parts["cache"], deps={"bucket": [bucket]}),
        captured("gcp:storage/bucketIAMMember:BucketIAMMember", NAMES["bucket_member"], BUCKET_MEMBER, deps={"bucket": [bucket]}),
    ]
    kube = [k8s(parts[key]) for key in list(parts)[4:]]
    return [*platform, *pools, *storage, *kube]


# ------------------------------------------------------------------------------------ one-change bad inputs
# Shared by test_policy_stack (the exact messages) and test_policy_firing (each fires its policy alone).

VLLM_ON_ABSENT_GPU = mutate(VLLM, "spec.template.spec.nodeSelector", {"cloud.google.com/gke-accelerator": "nvidia-h100-80gb"})
LWS_SUBGROUP_OF_TWO = mutate(LWS, "spec.leaderWorkerTemplate.subGroupPolicy", {"subGroupSize": 2})
CLASS_SCALING_UP_ANYWAY = mutate(COMPUTE_CLASS, "spec.whenUnsatisfiable", "ScaleUpAnyway")
CACHE_IN_ANOTHER_REGION = mutate(CACHE, "zone", "us-central1-c")
MONITORING_UNDECLARED_PORT = mutate(POD_MONITORING, "spec.endpoints.0.port", "metrics")
HPA_ON_ABSENT_TARGET = mutate(HPA, "spec.scaleTargetRef.name", "gemma-2b")
PDB_WITHOUT_DISRUPTION = mutate(PDB, "spec.maxUnavailable", 0)
VLLM_ON_GCSFUSE = mutate(
    VLLM,
    "spec.template.spec.volumes",
    [{"name": "weights", "csi": {"driver": "gcsfuse.csi.storage.gke.io", "volumeAttributes": {"bucketName": "m"}}}],
)
MODELS_KEY = captured("gcp:kms/cryptoKey:CryptoKey", "models-key", {"name": "models", "keyRing": "r"}, protect=True)
IAM_MEMBER = "gcp:projects/iAMMember:IAMMember"


def node_sa_editor(platform: Sequence[Captured]) -> Captured:
    """roles/editor granted to the platform's node service account (the member computed from the account)."""
    account = next(r for r in platform if r.type == "gcp:serviceaccount/account:Account")
    inputs = {"project": "acme-inference-prod", "role": "roles/editor", "member": "[unknown]"}
    return captured(IAM_MEMBER, "cluster-nodes-editor", inputs, deps={"member": [account]})


def keyed(stack: Sequence[Captured], *grants: Captured) -> list[Captured]:
    """The stack plus MODELS_KEY, its bucket encrypted with that key and created after `grants`."""
    bucket = next(r for r in stack if r.type == BUCKET_TYPE)
    encrypted = captured(
        bucket.type, bucket.name, bucket.inputs, protect=True, deps={"encryption": [MODELS_KEY]}, depends_on=grants
    )
    return [encrypted if r is bucket else r for r in stack] + [MODELS_KEY]


def project_services(*apis: str) -> list[Captured]:
    """The stack enabling these APIs itself (so the pack checks that it enables every API its resources use)."""
    return [
        captured("gcp:projects/service:Service", api.split(".")[0], {"service": api, "disableOnDestroy": False}) for api in apis
    ]


PLATFORM_APIS = ("container.googleapis.com", "compute.googleapis.com", "iam.googleapis.com", "storage.googleapis.com")
"""The APIs of the platform's resources: short of those a PodMonitoring (monitoring) and a Gateway (networkservices) use."""


# ------------------------------------------------------------------------------------ the prod platform


@functools.cache
def prod_capture() -> Capture:
    """The prod stack as the program registers it, captured once for the whole session (a capture takes seconds)."""
    return capture(StackFile.read(PROD_STACK))


def prod_platform() -> list[Captured]:
    """The captured prod core (providers, network, cluster, system pool, node identity); `serving_stack` adds the rest.

    Pools, storage, project services and Kubernetes objects the program may also register are left out,
    so each test controls exactly what its stack holds.
    """
    core = ("pulumi:", "gke-inference:network:", "gke-inference:cluster:", "gke-inference:identity:", "gcp:compute/")
    core_types = (CLUSTER_TYPE, "gcp:serviceaccount/account:Account", "gcp:projects/iAMMember:IAMMember")
    accelerator_machines = {m for g in (*load_catalog().tpus.values(), *load_catalog().gpus.values()) for m in g.machine_types}
    return [
        r
        for r in prod_capture().resources
        if r.type.startswith(core)
        or r.type in core_types
        or (r.type == NODE_POOL and r.inputs["nodeConfig"]["machineType"] not in accelerator_machines)
    ]
