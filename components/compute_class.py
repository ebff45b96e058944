"""GKE custom compute classes generated from the catalog: typed spec, capacity fallback ladder.

A class names the manually created pool first (GKE selects it by the label and taint the pool
carries), then one priority per capacity rung for node auto-creation: a specific reservation,
on-demand, flex-start, spot, in the configured order.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import pulumi
import pulumi_kubernetes as k8s

from components.k8s_types import CamelModel

API_VERSION = "cloud.google.com/v1"
CapacityRung = Literal["reservation", "on_demand", "flex_start", "spot"]
"""The capacity models a ladder can name; the stack schema's ladder must type-check against it."""


class Tpu(CamelModel):
    type: str
    count: int
    """TPU chips per node (the google.com/tpu resource of one VM)."""
    topology: str


class Gpu(CamelModel):
    type: str
    count: int
    driver_version: Literal["default", "latest"]


class SpecificReservation(CamelModel):
    name: str
    project: str
    zones: tuple[str, ...]


class Reservations(CamelModel):
    affinity: Literal["Specific", "AnyBestEffort", "None"]
    specific: tuple[SpecificReservation, ...] | None = None


class FlexStart(CamelModel):
    enabled: bool


class Location(CamelModel):
    zones: tuple[str, ...]


class PriorityRule(CamelModel):
    nodepools: tuple[str, ...] | None = None
    machine_type: str | None = None
    tpu: Tpu | None = None
    gpu: Gpu | None = None
    spot: bool | None = None
    reservations: Reservations | None = None
    flex_start: FlexStart | None = None
    location: Location | None = None


class NodePoolAutoCreation(CamelModel):
    enabled: bool


class ActiveMigration(CamelModel):
    optimize_rule_priority: bool


class NodePoolConfig(CamelModel):
    service_account: str
    image_type: Literal["cos_containerd"] = "cos_containerd"


class ComputeClassSpec(CamelModel):
    priorities: tuple[PriorityRule, ...]
    node_pool_auto_creation: NodePoolAutoCreation
    active_migration: ActiveMigration
    when_unsatisfiable: Literal["DoNotScaleUp", "ScaleUpAnyway"]
    node_pool_config: NodePoolConfig | None = None


@dataclass(frozen=True)
class ComputeClassArgs:
    machine_type: str
    accelerator: Tpu | Gpu
    """What one node of the pool carries; every rung requests the same."""
    zones: tuple[str, ...]
    reservation: str | None
    """The pool's specific reservation, tried by a `reservation` rung."""
    ladder: tuple[CapacityRung, ...]
    node_pools: tuple[str, ...]
    """Physical names of the manually created node pools the class selects first."""
    project: str
    node_service_account: pulumi.Input[str]
    node_pool_auto_creation: bool
    active_migration: bool
    when_unsatisfiable: Literal["DoNotScaleUp", "ScaleUpAnyway"]


def priorities(args: ComputeClassArgs) -> tuple[PriorityRule, ...]:
    """Existing pools first, then one auto-creation rung per ladder step, in order."""
    acc = args.accelerator
    # The machine and accelerator every rung of the class requests.
    if isinstance(acc, Tpu):
        base = PriorityRule(machine_type=args.machine_type, tpu=acc)
    else:
        base = PriorityRule(machine_type=args.machine_type, gpu=acc)
    zones = Location(zones=args.zones)
    rungs: list[PriorityRule] = [PriorityRule(nodepools=args.node_pools)] if args.node_pools else []
    for rung in args.ladder:
        if rung == "reservation":
            # Zones of a specific reservation go inside it; GKE refuses them beside `location`.
            specific = SpecificReservation(name=args.reservation or "", project=args.project, zones=args.zones)
            rungs.append(
                base.model_copy(update={"reservations": Reservations(affinity="Specific", specific=(specific,)), "spot": False})
            )
        elif rung == "on_demand":
            rungs.append(base.model_copy(update={"spot": False, "location": zones}))
        elif rung == "flex_start":
            rungs.append(base.model_copy(update={"flex_start": FlexStart(enabled=True), "location": zones}))
        else:
            rungs.append(base.model_copy(update={"spot": True, "location": zones}))
    return tuple(rungs)


def compute_class_spec(args: ComputeClassArgs, node_service_account: str | None) -> ComputeClassSpec:
    """The spec once the node service account's email is known (it is an output at deploy time)."""
    return ComputeClassSpec(
        priorities=priorities(args),
        node_pool_auto_creation=NodePoolAutoCreation(enabled=args.node_pool_auto_creation),
        active_migration=ActiveMigration(optimize_rule_priority=args.active_migration),
        when_unsatisfiable=args.when_unsatisfiable,
        node_pool_config=NodePoolConfig(service_account=node_service_account) if node_service_account else None,
    )


class ComputeClass(pulumi.ComponentResource):
    """One `cloud.google.com/v1` ComputeClass; deployed through the cluster's Kubernetes provider."""

    def __init__(self, name: str, args: ComputeClassArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("gke-inference:k8s:ComputeClass", name, None, opts)
        spec = pulumi.Output.from_input(args.node_service_account).apply(lambda sa: compute_class_spec(args, sa).to_k8s())
        k8s.apiextensions.CustomResource(
            f"{name}-cc",
            api_version=API_VERSION,
            kind="ComputeClass",
            metadata=k8s.meta.v1.ObjectMetaArgs(name=name, labels={"app.kubernetes.io/managed-by": "pulumi"}),
            spec=spec,
            opts=pulumi.ResourceOptions(parent=self),
        )
        self.register_outputs({})
