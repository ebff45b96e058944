"""Accelerator node pools: TPU slices (one node pool per slice) and GPU pools.

Every number (node count, placement, accelerator count, autoscaling bounds) comes from the catalog
through the resolved pool of `infra.config`; nothing here is typed by hand.
"""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_gcp as gcp

from components.cluster import secure_node_config
from infra.config import GpuPool, TpuPool

COMPUTE_CLASS_KEY = "cloud.google.com/compute-class"
POOL_LABEL = "gke-inference/pool"
"""Label naming the configured pool on every node, so workloads and policies can find it."""


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
class TpuSlicePoolArgs:
    pool: TpuPool
    target: ClusterTarget
    compute_class: str | None = None
    """ComputeClass that selects this pool: its label and taint go on the nodes."""


class TpuSlicePool(pulumi.ComponentResource):
    """N identical TPU slices, one GKE node pool per slice.

    Multi-host slices get COMPACT placement with the slice topology and live in one zone; GKE
    creates and removes a multi-host slice as a unit, so autoscaling moves between 0 and all of
    its VMs. Single-host pools scale in whole VMs (each VM is a slice).
    """

    node_pools: list[pulumi.Output[str]]

    def __init__(self, name: str, args: TpuSlicePoolArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("gke-inference:nodepool:TpuSlicePool", name, None, opts)
        pool, slice_, target = args.pool, args.pool.slice, args.target
        cfg = pool.config
        min_slices, max_slices = cfg.slices_per_pool
        self.node_pools = []
        for index in range(cfg.slices):
            node_pool_name = name if cfg.slices == 1 else f"{name}-{index}"
            created = gcp.container.NodePool(
                node_pool_name,
                name=node_pool_name,
                project=target.project,
                location=target.region,
                cluster=target.cluster,
                node_locations=list(pool.zones),
                node_count=None if cfg.autoscaling else slice_.vms,
                initial_node_count=min_slices * slice_.vms if cfg.autoscaling else None,
                autoscaling=gcp.container.NodePoolAutoscalingArgs(
                    min_node_count=min_slices * slice_.vms,
                    max_node_count=max_slices * slice_.vms,
                    location_policy="ANY",
                )
                if cfg.autoscaling
                else None,
                placement_policy=gcp.container.NodePoolPlacementPolicyArgs(type="COMPACT", tpu_topology=slice_.topology)
                if slice_.multi_host
                else None,
                management=gcp.container.NodePoolManagementArgs(auto_repair=True, auto_upgrade=target.auto_upgrade),
                node_config=secure_node_config(
                    target.node_service_account,
                    machine_type=slice_.machine_type,
                    **capacity_settings(cfg.provisioning, cfg.reservation),
                    **class_selection(pool.name, args.compute_class),
                ),
                opts=pulumi.ResourceOptions(parent=self, protect=target.protect, ignore_changes=["initialNodeCount"]),
            )
            self.node_pools.append(created.name)
        self.register_outputs({"node_pools": self.node_pools})


@dataclass(frozen=True)
class GpuPoolArgs:
    pool: GpuPool
    target: ClusterTarget
    compute_class: str | None = None


class GpuNodePool(pulumi.ComponentResource):
    """A GPU node pool across the zones that offer the GPU, with GKE-managed drivers."""

    node_pool: pulumi.Output[str]

    def __init__(self, name: str, args: GpuPoolArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("gke-inference:nodepool:GpuNodePool", name, None, opts)
        pool, target = args.pool, args.target
        cfg = pool.config
        extra: dict[str, object] = {}
        if cfg.local_ssd_count:
            extra["ephemeral_storage_local_ssd_config"] = gcp.container.NodePoolNodeConfigEphemeralStorageLocalSsdConfigArgs(
                local_ssd_count=cfg.local_ssd_count
            )
        if cfg.secondary_boot_disk_image:
            extra["secondary_boot_disks"] = [
                gcp.container.NodePoolNodeConfigSecondaryBootDiskArgs(
                    disk_image=cfg.secondary_boot_disk_image, mode="CONTAINER_IMAGE_CACHE"
                )
            ]
        created = gcp.container.NodePool(
            name,
            name=name,
            project=target.project,
            location=target.region,
            cluster=target.cluster,
            node_locations=list(pool.zones),
            initial_node_count=cfg.min_nodes_per_zone,
            autoscaling=gcp.container.NodePoolAutoscalingArgs(
                min_node_count=cfg.min_nodes_per_zone,
                max_node_count=cfg.max_nodes_per_zone,
                location_policy="ANY" if cfg.provisioning in ("spot", "flex_start", "queued") else "BALANCED",
            ),
            queued_provisioning=gcp.container.NodePoolQueuedProvisioningArgs(enabled=True)
            if cfg.provisioning == "queued"
            else None,
            management=gcp.container.NodePoolManagementArgs(auto_repair=True, auto_upgrade=target.auto_upgrade),
            node_config=secure_node_config(
                target.node_service_account,
                machine_type=cfg.machine_type,
                guest_accelerators=[
                    gcp.container.NodePoolNodeConfigGuestAcceleratorArgs(
                        type=pool.gpu.gke_accelerator,
                        count=pool.gpus_per_vm,
                        gpu_driver_installation_config=gcp.container.NodePoolNodeConfigGuestAcceleratorGpuDriverInstallationConfigArgs(
                            gpu_driver_version=cfg.driver_version
                        ),
                    )
                ],
                **capacity_settings(cfg.provisioning, cfg.reservation),
                **class_selection(pool.name, args.compute_class),
                **extra,
            ),
            opts=pulumi.ResourceOptions(parent=self, protect=target.protect, ignore_changes=["initialNodeCount"]),
        )
        self.node_pool = created.name
        self.register_outputs({"node_pool": self.node_pool})
