"""Kubernetes object shapes the rules share: where pod templates live in each workload kind, labels, selectors."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from policies.base import Props, as_int, get, items, mapping

LWS = "kubernetes:leaderworkerset.x-k8s.io/v1:LeaderWorkerSet"
DEPLOYMENT = "kubernetes:apps/v1:Deployment"
HPA = "kubernetes:autoscaling/v2:HorizontalPodAutoscaler"
SERVICE = "kubernetes:core/v1:Service"
POD_MONITORING = "kubernetes:monitoring.googleapis.com/v1:PodMonitoring"
COMPUTE_CLASS = "kubernetes:cloud.google.com/v1:ComputeClass"
INFERENCE_POOL = "kubernetes:inference.networking.k8s.io/v1:InferencePool"
GATEWAY = "kubernetes:gateway.networking.k8s.io/v1:Gateway"
HTTP_ROUTE = "kubernetes:gateway.networking.k8s.io/v1:HTTPRoute"
PDB = "kubernetes:policy/v1:PodDisruptionBudget"
NETWORK_POLICY = "kubernetes:networking.k8s.io/v1:NetworkPolicy"

TEMPLATE_PATHS: Mapping[str, tuple[tuple[str, str], ...]] = {
    DEPLOYMENT: (("pod", "spec.template"),),
    "kubernetes:apps/v1:StatefulSet": (("pod", "spec.template"),),
    "kubernetes:apps/v1:DaemonSet": (("pod", "spec.template"),),
    "kubernetes:batch/v1:Job": (("pod", "spec.template"),),
    "kubernetes:batch/v1:CronJob": (("pod", "spec.jobTemplate.spec.template"),),
    LWS: (("leader", "spec.leaderWorkerTemplate.leaderTemplate"), ("worker", "spec.leaderWorkerTemplate.workerTemplate")),
}
WORKLOAD_TYPES = (*TEMPLATE_PATHS, "kubernetes:core/v1:Pod")
"""Every type that carries a pod spec."""

CLUSTER_SCOPED_KINDS = frozenset(
    {
        "Namespace",
        "ComputeClass",
        "ClusterRole",
        "ClusterRoleBinding",
        "CustomResourceDefinition",
        "GatewayClass",
        "ClusterPodMonitoring",
        "PriorityClass",
        "StorageClass",
        "PersistentVolume",
        "APIService",
        "MutatingWebhookConfiguration",
        "ValidatingWebhookConfiguration",
    }
)

TPU_RESOURCE = "google.com/tpu"
GPU_RESOURCE = "nvidia.com/gpu"
ACCELERATOR_RESOURCES = (TPU_RESOURCE, GPU_RESOURCE)
NODEPOOL_LABEL = "cloud.google.com/gke-nodepool"
TPU_ACCELERATOR_LABEL = "cloud.google.com/gke-tpu-accelerator"
TPU_TOPOLOGY_LABEL = "cloud.google.com/gke-tpu-topology"
GPU_ACCELERATOR_LABEL = "cloud.google.com/gke-accelerator"
COMPUTE_CLASS_LABEL = "cloud.google.com/compute-class"
SPOT_LABEL = "cloud.google.com/gke-spot"
ACCELERATOR_SELECTORS = (TPU_ACCELERATOR_LABEL, TPU_TOPOLOGY_LABEL, GPU_ACCELERATOR_LABEL, COMPUTE_CLASS_LABEL)


@dataclass(frozen=True)
class PodTemplate:
    """One pod template of a workload: its role ('pod', 'leader', 'worker'), labels and spec as plain data."""

    role: str
    labels: Mapping[str, str]
    spec: Mapping[str, Any]

    @property
    def containers(self) -> list[Mapping[str, Any]]:
        return [mapping(c) for c in items(self.spec.get("containers")) + items(self.spec.get("initContainers"))]

    @property
    def node_selector(self) -> Mapping[str, str]:
        return mapping(self.spec.get("nodeSelector"))

    def limit(self, resource: str) -> int | None:
        """The largest limit of `resource` over the containers (accelerators are requested whole)."""
        values = [as_int(get(c, ("resources", "limits", resource))) for c in self.containers]
        found = [v for v in values if v is not None]
        return max(found) if found else None

    @property
    def is_accelerated(self) -> bool:
        return any(k in self.node_selector for k in ACCELERATOR_SELECTORS) or any(self.limit(r) for r in ACCELERATOR_RESOURCES)

    def container_ports(self) -> set[str | int]:
        """Named and numbered container ports."""
        ports: set[str | int] = set()
        for c in self.containers:
            for p in items(c.get("ports")):
                if isinstance(p, Mapping):
                    if p.get("name"):
                        ports.add(str(p["name"]))
                    if p.get("containerPort") is not None:
                        ports.add(int(p["containerPort"]))
        return ports


def templates(resource_type: str, props: Props) -> Iterator[PodTemplate]:
    """Every pod template of a workload (none for other kinds)."""
    if resource_type == "kubernetes:core/v1:Pod":
        yield PodTemplate("pod", mapping(get(props, "metadata.labels")), mapping(get(props, "spec")))
        return
    for role, path in TEMPLATE_PATHS.get(resource_type, ()):
        template = get(props, path)
        if isinstance(template, Mapping):
            yield PodTemplate(role, mapping(get(template, "metadata.labels")), mapping(template.get("spec")))


def selector_matches(selector: Mapping[str, Any], labels: Mapping[str, str]) -> bool:
    """A LabelSelector (matchLabels + matchExpressions) against a label set."""
    if not selector:
        return False
    if any(labels.get(k) != v for k, v in mapping(selector.get("matchLabels")).items()):
        return False
    for expr in items(selector.get("matchExpressions")):
        key, op, values = expr.get("key"), expr.get("operator"), items(expr.get("values"))
        present = key in labels
        if (
            (op == "In" and labels.get(key) not in values)
            or (op == "NotIn" and present and labels.get(key) in values)
            or (op == "Exists" and not present)
            or (op == "DoesNotExist" and present)
        ):
            return False
    return True


def namespace(props: Props) -> str:
    ns = get(props, "metadata.namespace")
    return ns if isinstance(ns, str) and ns else "default"


def object_name(props: Props, fallback: str) -> str:
    name = get(props, "metadata.name")
    return name if isinstance(name, str) and name else fallback
