"""Accelerator node pools: TPU slices (one node pool per slice) and GPU pools.

Every number (node count, placement, accelerator count, autoscaling bounds) comes from the catalog
through the composition's resolved pools and arrives here as plain args; nothing here is typed by hand.
"""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_gcp as gcp

from components.cluster import NODE_METADATA, secure_node_config

COMPUTE_CLASS_KEY = "cloud.google.com/compute-class"
POOL_LABEL = "gke-inference/pool"
"""Label naming the configured pool on every node, so workloads and policies can find it."""
EXCEPTION_METADATA = "policy-gke-inference-dev-{policy}"
"""Instance-metadata key naming a policy exception on a node pool, its value the reason (policies/base.py reads it):
metadata is the one free-text field a node pool has; labels allow no spaces, URLs or sentences."""
WORKLOAD_IDENTITY_POLICY = "inf-gke-workload-identity"
REPLACE_DELETING_FIRST = True
"""A field that forces a new pool (placement, accelerators, node account: infra/catalog/replacements.yaml) replaces it
by deleting the old pool first: the pool keeps its name, and the reservation or accelerator quota that holds one slice or one pool's
GPUs could not hold a second one beside it anyway. The capacity is away until the new pool is up; `diff` says how
long, and a protected pool is never replaced without lifting its protection."""


@dataclass(frozen=True)
class DedicatedNodeIdentity:
    """Nodes that run as a service account of their own with Workload Identity Federation off (GCE_METADATA).

    Every pod scheduled on such a node acts as `service_account` through the metadata server, so the account holds
    only what the pods the pool is dedicated to need; `reason` is written on the pool as the named exception to
    the Workload Identity policy.
    """

    service_account: pulumi.Input[str]
    reason: str


def identity_settings(dedicated: DedicatedNodeIdentity | None) -> dict[str, object]:
    """Node-config fields beside the account for who the nodes' pods are: nothing for Workload Identity (what
    secure_node_config sets), or the GCE metadata server and the named policy exception for a dedicated account."""
    if dedicated is None:
        return {}
    return {
        "workload_metadata_config": gcp.container.NodePoolNodeConfigWorkloadMetadataConfigArgs(mode="GCE_METADATA"),
        "metadata": {**NODE_METADATA, EXCEPTION_METADATA.format(policy=WORKLOAD_IDENTITY_POLICY): dedicated.reason},
    }


def capacity_settings(provisioning: str, reservation: str | None) -> dict[str, object]:
    """Node-config fields for a capacity model: spot, flex-start or a specific reservation."""
    if provisioning == "spot":
        return {"spot": True}
    if provisioning == "flex_start":
        return {"flex_start": True}
    if provisioning == "reservation":
        return {
            "reservation_affinity": gcp.container.NodePoolNodeConfigReservationAffinityArgs(
                consume_reservation_type="SPECIFIC_RESERVATION",
                key="compute.googleapis.com/reservation-name",
                values=[reservation or ""],
            )
        }
    if provisioning == "queued":
        # Queued provisioning (DWS) nodes come only through ProvisioningRequests, never reservations.
        return {
            "reservation_affinity": gcp.container.NodePoolNodeConfigReservationAffinityArgs(
                consume_reservation_type="NO_RESERVATION"
            )
        }
    return {}


def class_selection(pool_name: str, compute_class: str | None) -> dict[str, object]:
    """Labels, and the taint a ComputeClass needs to select a manually created pool."""
    labels = {POOL_LABEL: pool_name}
    if compute_class is None:
        return {"labels": labels}
    labels[COMPUTE_CLASS_KEY] = compute_class
    taint = gcp.container.NodePoolNodeConfigTaintArgs(key=COMPUTE_CLASS_KEY, value=compute_class, effect="NO_SCHEDULE")
    return {"labels": labels, "taints": [taint]}


@dataclass(frozen=True)
class ClusterTarget:
    """Where node pools go: the cluster, its region and the node service account."""

    project: str
    region: str
    cluster: pulumi.Input[str]
    node_service_account: pulumi.Input[str]
    auto_upgrade: bool = True
    protect: bool = False
    """Guard accelerator pools in prod: a deleted slice's capacity may not come back."""


@dataclass(frozen=True)
class NodeAutoscaling:
    """Node bounds of one node pool; for a multi-host slice, whole slices' worth of VMs."""

    min_nodes: int
    max_nodes: int


@dataclass(frozen=True)
class TpuSlicePoolArgs:
    pool: str
    """Configured pool name, put on every node as POOL_LABEL."""
    target: ClusterTarget
    node_pools: tuple[str, ...]
    """Physical node-pool names, one per slice."""
    machine_type: str
    node_count: int
    """VMs of one slice: the fixed size of each node pool unless autoscaled."""
    zones: tuple[str, ...]
    placement_topology: str | None
    """Slice topology for COMPACT placement; set for multi-host slices only."""
    provisioning: str
    reservation: str | None = None
    autoscaling: NodeAutoscaling | None = None
    compute_class: str | None = None
    """ComputeClass that selects this pool: its label and taint go on the nodes."""
    dedicated_identity: DedicatedNodeIdentity | None = None
    """Set for the pools that serve Pathways: Workload Identity off, their own node account."""


class TpuSlicePool(pulumi.ComponentResource):
    """N identical TPU slices, one GKE node pool per slice.

    Multi-host slices get COMPACT placement with the slice topology and live in one zone; GKE
    creates and removes a multi-host slice as a unit, so autoscaling moves between 0 and all of
    its VMs. Single-host pools scale in whole VMs (each VM is a slice).
    """

    node_pools: list[pulumi.Output[str]]

    def __init__(self, name: str, args: TpuSlicePoolArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("gke-inference:nodepool:TpuSlicePool", name, None, opts)
        target, auto = args.target, args.autoscaling
        self.node_pools = []
        for node_pool_name in args.node_pools:
            created = gcp.container.NodePool(
                node_pool_name,
                name=node_pool_name,
                project=target.project,
                location=target.region,
                cluster=target.cluster,
                node_locations=list(args.zones),
                node_count=None if auto else args.node_count,
                initial_node_count=auto.min_nodes if auto else None,
                autoscaling=gcp.container.NodePoolAutoscalingArgs(
                    min_node_count=auto.min_nodes,
                    max_node_count=auto.max_nodes,
                    location_policy="ANY",
                )
                if auto
                else None,
                placement_policy=gcp.container.NodePoolPlacementPolicyArgs(type="COMPACT", tpu_topology=args.placement_topology)
                if args.placement_topology
                else None,
                management=gcp.container.NodePoolManagementArgs(auto_repair=True, auto_upgrade=target.auto_upgrade),
                node_config=secure_node_config(
                    args.dedicated_identity.service_account if args.dedicated_identity else target.node_service_account,
                    machine_type=args.machine_type,
                    **identity_settings(args.dedicated_identity),
                    **capacity_settings(args.provisioning, args.reservation),
                    **class_selection(args.pool, args.compute_class),
                ),
                opts=pulumi.ResourceOptions(
                    parent=self,
                    protect=target.protect,
                    ignore_changes=["initialNodeCount"],
                    delete_before_replace=REPLACE_DELETING_FIRST,
                ),
            )
            self.node_pools.append(created.name)
        self.register_outputs({"node_pools": self.node_pools})


@dataclass(frozen=True)
class GpuPoolArgs:
    pool: str
    """Configured pool name, put on every node as POOL_LABEL."""
    target: ClusterTarget
    machine_type: str
    accelerator: str
    """GKE accelerator type, e.g. nvidia-l4."""
    gpus_per_node: int
    driver_version: str
    """GKE-installed driver: DEFAULT or LATEST."""
    zones: tuple[str, ...]
    min_nodes_per_zone: int
    max_nodes_per_zone: int
    provisioning: str
    reservation: str | None = None
    local_ssd_count: int = 0
    secondary_boot_disk_image: str | None = None
    compute_class: str | None = None


class GpuNodePool(pulumi.ComponentResource):
    """A GPU node pool across the zones that offer the GPU, with GKE-managed drivers."""

    node_pool: pulumi.Output[str]

    def __init__(self, name: str, args: GpuPoolArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("gke-inference:nodepool:GpuNodePool", name, None, opts)
        target = args.target
        extra: dict[str, object] = {}
        if args.local_ssd_count:
            extra["ephemeral_storage_local_ssd_config"] = gcp.container.NodePoolNodeConfigEphemeralStorageLocalSsdConfigArgs(
                local_ssd_count=args.local_ssd_count
            )
        if args.secondary_boot_disk_image:
            extra["secondary_boot_disks"] = [
                gcp.container.NodePoolNodeConfigSecondaryBootDiskArgs(
                    disk_image=args.secondary_boot_disk_image, mode="CONTAINER_IMAGE_CACHE"
                )
            ]
        created = gcp.container.NodePool(
            name,
            name=name,
            project=target.project,
            location=target.region,
            cluster=target.cluster,
            node_locations=list(args.zones),
            initial_node_count=args.min_nodes_per_zone,
            autoscaling=gcp.container.NodePoolAutoscalingArgs(
                min_node_count=args.min_nodes_per_zone,
                max_node_count=args.max_nodes_per_zone,
                location_policy="ANY" if args.provisioning in ("spot", "flex_start", "queued") else "BALANCED",
            ),
            queued_provisioning=gcp.container.NodePoolQueuedProvisioningArgs(enabled=True)
            if args.provisioning == "queued"
            else None,
            management=gcp.container.NodePoolManagementArgs(auto_repair=True, auto_upgrade=target.auto_upgrade),
            node_config=secure_node_config(
                target.node_service_account,
                machine_type=args.machine_type,
                guest_accelerators=[
                    gcp.container.NodePoolNodeConfigGuestAcceleratorArgs(
                        type=args.accelerator,
                        count=args.gpus_per_node,
                        gpu_driver_installation_config=gcp.container.NodePoolNodeConfigGuestAcceleratorGpuDriverInstallationConfigArgs(
                            gpu_driver_version=args.driver_version
                        ),
                    )
                ],
                **capacity_settings(args.provisioning, args.reservation),
                **class_selection(args.pool, args.compute_class),
                **extra,
            ),
            opts=pulumi.ResourceOptions(
                parent=self,
                protect=target.protect,
                ignore_changes=["initialNodeCount"],
                delete_before_replace=REPLACE_DELETING_FIRST,
            ),
        )
        self.node_pool = created.name
        self.register_outputs({"node_pool": self.node_pool})
