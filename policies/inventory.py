"""Node pools read back into catalog terms (slice, GPU, zones, labels), and the joins stack policies share.

Everything a pool implies (chips per VM, VMs per slice, the labels GKE puts on its nodes) is derived
from ``infra.catalog`` from the pool's own inputs, never written here.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import cached_property
from typing import Any

from pulumi_policy import PolicyResource

from components.cluster import SYSTEM_POOL_ZONES
from infra.catalog import Catalog, GpuType, TpuGeneration, TpuSlice
from infra.catalog import load as load_catalog
from policies.base import Props, as_int, get, items, mapping
from policies.kube import (
    COMPUTE_CLASS,
    COMPUTE_CLASS_LABEL,
    GPU_ACCELERATOR_LABEL,
    NODEPOOL_LABEL,
    SPOT_LABEL,
    TPU_ACCELERATOR_LABEL,
    TPU_TOPOLOGY_LABEL,
    WORKLOAD_TYPES,
    PodTemplate,
    namespace,
    object_name,
    templates,
)

NODE_POOL = "gcp:container/nodePool:NodePool"
STACK_REFERENCE = "pulumi:pulumi:StackReference"
CLUSTER = "gcp:container/cluster:Cluster"


def tpu_generation(catalog: Catalog, machine_type: str) -> TpuGeneration | None:
    return next((g for g in catalog.tpus.values() if machine_type in g.machine_types), None)


def single_host_topology(gen: TpuGeneration, machine_type: str) -> str | None:
    """The topology one VM of this machine type forms on its own (2x4 for ct6e-standard-8t)."""
    chips = gen.machine_types[machine_type]
    for topology, machines in gen.shapes.items():
        if machine_type in machines and TpuSlice(generation=gen, topology=topology, machine_type=machine_type).chips == chips:
            return topology
    return None


def slice_text(slice_: TpuSlice) -> str:
    """How messages name a slice: 'v6e 4x4 (4x ct6e-standard-4t)'."""
    return f"{slice_.shape} ({slice_.vms}x {slice_.machine_type})"


@dataclass(frozen=True)
class Pool:
    """A GKE node pool as the policies see it."""

    name: str
    """The GKE name (inputs.name), which is what gke-nodepool selectors use."""
    props: Props
    resource: PolicyResource | None = None

    @cached_property
    def machine_type(self) -> str:
        value = get(self.props, "nodeConfig.machineType")
        return value if isinstance(value, str) else ""

    @cached_property
    def zones(self) -> tuple[str, ...]:
        return tuple(z for z in items(get(self.props, "nodeLocations")) if isinstance(z, str))

    @property
    def zone_count(self) -> int:
        return len(self.zones) or SYSTEM_POOL_ZONES

    @cached_property
    def tpu(self) -> TpuSlice | None:
        """The slice this pool forms, from its machine type and placement topology (None: not a TPU pool)."""
        gen = tpu_generation(load_catalog(), self.machine_type)
        if gen is None:
            return None
        topology = get(self.props, "placementPolicy.tpuTopology")
        if not isinstance(topology, str) or not topology:
            topology = single_host_topology(gen, self.machine_type)
        return None if topology is None else TpuSlice(generation=gen, topology=topology, machine_type=self.machine_type)

    @cached_property
    def gpu(self) -> GpuType | None:
        catalog = load_catalog()
        by_machine = catalog.gpu_for_machine(self.machine_type)
        if by_machine is not None:
            return by_machine
        accelerator = get(self.props, "nodeConfig.guestAccelerators.0.type")
        return next((g for g in catalog.gpus.values() if g.gke_accelerator == accelerator), None)

    @property
    def gpus_per_vm(self) -> int:
        if self.gpu is None:
            return 0
        count = as_int(get(self.props, "nodeConfig.guestAccelerators.0.count"))
        return self.gpu.machine_types.get(self.machine_type) or count or 0

    @property
    def is_accelerator(self) -> bool:
        return self.tpu is not None or self.gpu is not None

    @property
    def spot(self) -> bool:
        return get(self.props, "nodeConfig.spot") is True or get(self.props, "nodeConfig.preemptible") is True

    @property
    def reservation(self) -> bool:
        kind = get(self.props, "nodeConfig.reservationAffinity.consumeReservationType")
        return kind in ("SPECIFIC_RESERVATION", "ANY_RESERVATION")

    @property
    def provisioning(self) -> str:
        return "spot" if self.spot else "reservation" if self.reservation else "on_demand"

    @cached_property
    def labels(self) -> dict[str, str]:
        """The labels GKE puts on this pool's nodes, as workload nodeSelectors see them."""
        labels = {str(k): str(v) for k, v in mapping(get(self.props, "nodeConfig.labels")).items()}
        labels[NODEPOOL_LABEL] = self.name
        if self.tpu is not None:
            labels[TPU_ACCELERATOR_LABEL] = self.tpu.generation.gke_accelerator
            labels[TPU_TOPOLOGY_LABEL] = self.tpu.topology
        if self.gpu is not None:
            labels[GPU_ACCELERATOR_LABEL] = self.gpu.gke_accelerator
        if self.spot:
            labels[SPOT_LABEL] = "true"
        return labels

    @property
    def compute_class(self) -> str | None:
        """The class this pool serves: GKE needs both the label and the NoSchedule taint on a manual pool."""
        name = self.labels.get(COMPUTE_CLASS_LABEL)
        tainted = any(
            t.get("key") == COMPUTE_CLASS_LABEL and t.get("value") == name and t.get("effect") == "NO_SCHEDULE"
            for t in items(get(self.props, "nodeConfig.taints"))
        )
        return name if name and tainted else None

    def max_nodes(self) -> int:
        """Nodes at full scale across all zones (autoscaling ceiling, else the fixed count)."""
        total = as_int(get(self.props, "autoscaling.totalMaxNodeCount"))
        if total:
            return total
        per_zone = (
            as_int(get(self.props, "autoscaling.maxNodeCount"))
            or as_int(get(self.props, "nodeCount"))
            or as_int(get(self.props, "initialNodeCount"))
            or 0
        )
        return per_zone * self.zone_count

    def min_nodes(self) -> int:
        total = as_int(get(self.props, "autoscaling.totalMinNodeCount"))
        if total is not None and get(self.props, "autoscaling.totalMaxNodeCount") is not None:
            return total
        if get(self.props, "autoscaling") is not None:
            return (as_int(get(self.props, "autoscaling.minNodeCount")) or 0) * self.zone_count
        return (as_int(get(self.props, "nodeCount")) or as_int(get(self.props, "initialNodeCount")) or 0) * self.zone_count

    def serves(self, node_selector: Mapping[str, str]) -> bool:
        """Whether a pod with this nodeSelector can be scheduled here (compute-class checked separately)."""
        return all(self.labels.get(k) == v for k, v in node_selector.items() if k != COMPUTE_CLASS_LABEL)


def pool_name(resource_name: str, props: Props) -> str:
    name = get(props, "name")
    return name if isinstance(name, str) and name else resource_name


@dataclass(frozen=True)
class Workload:
    resource: PolicyResource
    templates: tuple[PodTemplate, ...]

    @property
    def namespace(self) -> str:
        return namespace(self.resource.props)

    @property
    def name(self) -> str:
        return object_name(self.resource.props, self.resource.name)

    @property
    def kind(self) -> str:
        return self.resource.resource_type.rsplit(":", 1)[-1]


class Stack:
    """Indexes of one stack's resources for the joins stack policies make."""

    def __init__(self, resources: Sequence[PolicyResource]):
        self.resources = list(resources)
        self.by_urn = {r.urn: r for r in self.resources}
        self.pools = [Pool(pool_name(r.name, r.props), r.props, r) for r in self.of_type(NODE_POOL)]
        self.workloads = [
            Workload(r, tuple(templates(r.resource_type, r.props))) for r in self.resources if r.resource_type in WORKLOAD_TYPES
        ]
        self.compute_classes = {str(get(r.props, "metadata.name") or r.name): r for r in self.of_type(COMPUTE_CLASS)}

    def of_type(self, *types: str) -> list[PolicyResource]:
        return [r for r in self.resources if r.resource_type in types]

    @property
    def pools_elsewhere(self) -> bool:
        """A serving stack: its pools are the platform stack's, read through a StackReference. Joins of a workload to
        its pool run on `gke-inference plan` over both stacks (and the serving program refuses a platform whose
        pools differ from its configuration); here they would find no pool at all."""
        return not self.pools and bool(self.of_type(STACK_REFERENCE))

    def clusters(self) -> list[PolicyResource]:
        return self.of_type(CLUSTER)

    def dependency(self, resource: PolicyResource, prop: str, type_: str) -> PolicyResource | None:
        """The resource of `type_` that input `prop` was computed from, if any."""
        return next((d for d in resource.property_dependencies.get(prop, []) if d.resource_type == type_), None)

    def class_pools(self, name: str) -> list[Pool]:
        """Pools a ComputeClass can place pods on: labelled+tainted for it, named in a priority, or matching a TPU/GPU priority."""
        cc = self.compute_classes.get(name)
        found = [p for p in self.pools if p.compute_class == name]
        for priority in items(get(cc.props, "spec.priorities")) if cc else []:
            for p in self.pools:
                if p in found:
                    continue
                if p.name in items(priority.get("nodepools")) or _priority_matches(mapping(priority), p):
                    found.append(p)
        return found

    def pools_for(self, template: PodTemplate) -> list[Pool]:
        """Pools a pod template can land on, through its compute class and nodeSelector."""
        selector = template.node_selector
        candidates = self.class_pools(selector[COMPUTE_CLASS_LABEL]) if COMPUTE_CLASS_LABEL in selector else self.pools
        return [p for p in candidates if p.serves(selector)]


def _priority_matches(priority: Mapping[str, Any], pool: Pool) -> bool:
    tpu, gpu = mapping(priority.get("tpu")), mapping(priority.get("gpu"))
    if tpu and pool.tpu is not None:
        return tpu.get("type") == pool.tpu.generation.gke_accelerator and tpu.get("topology") in (None, pool.tpu.topology)
    if gpu and pool.gpu is not None:
        return gpu.get("type") == pool.gpu.gke_accelerator
    return bool(priority.get("machineType")) and priority.get("machineType") == pool.machine_type
