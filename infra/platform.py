"""Composition: turns one checked StackConfig into the platform's components."""

from __future__ import annotations

from collections import defaultdict

import pulumi
import pulumi_gcp as gcp

from components.cluster import AcceleratorLimit, Cluster, ClusterArgs
from components.network import Network, NetworkArgs
from infra.config import StackConfig


def resource_prefix(cfg: StackConfig) -> str:
    """Physical-name prefix shared by every GCP resource of the stack, e.g. 'inference-prod'."""
    return f"{cfg.cluster.name}-{cfg.environment}"


def accelerator_limits(cfg: StackConfig) -> tuple[AcceleratorLimit, ...]:
    """NAP ceilings per accelerator type: the chips/GPUs every pool may scale to, summed."""
    totals: dict[str, int] = defaultdict(int)
    for pool in cfg.tpu_pools.values():
        totals[pool.slice.generation.gke_accelerator] += pool.slice.chips * pool.config.max_slices
    for gpu_pool in cfg.gpu_pools.values():
        nodes = gpu_pool.config.max_nodes_per_zone * len(gpu_pool.zones)
        totals[gpu_pool.gpu.gke_accelerator] += nodes * gpu_pool.gpus_per_vm
    return tuple(AcceleratorLimit(k, v) for k, v in sorted(totals.items()))


def build(cfg: StackConfig) -> dict[str, pulumi.Input[object]]:
    """Create every component of the stack; returns the stack outputs."""
    gcp_provider = gcp.Provider(
        "gcp",
        project=cfg.project,
        region=cfg.region,
        default_labels={"managed-by": "pulumi", "app": "gke-inference", "environment": cfg.environment},
    )
    opts = pulumi.ResourceOptions(providers=[gcp_provider])
    prefix = resource_prefix(cfg)
    net_cfg = cfg.network
    if net_cfg.existing is not None:
        network: pulumi.Input[str] = net_cfg.existing.network
        subnetwork: pulumi.Input[str] = net_cfg.existing.subnetwork
        pods, services = net_cfg.existing.pods_range_name, net_cfg.existing.services_range_name
    else:
        net = Network(
            "network",
            NetworkArgs(
                project=cfg.project,
                region=cfg.region,
                prefix=prefix,
                subnet_cidr=net_cfg.subnet_cidr,
                pods_cidr=net_cfg.pods_cidr,
                services_cidr=net_cfg.services_cidr,
                proxy_only_cidr=net_cfg.proxy_only_cidr,
                protect=cfg.protection.protect,
            ),
            opts,
        )
        network, subnetwork = net.network, net.subnetwork
        pods, services = net.pods_range_name, net.services_range_name

    cluster = Cluster(
        "cluster",
        ClusterArgs(
            project=cfg.project,
            region=cfg.region,
            prefix=prefix,
            network=network,
            subnetwork=subnetwork,
            pods_range_name=pods,
            services_range_name=services,
            master_cidr=net_cfg.master_cidr,
            config=cfg.cluster,
            observability=cfg.observability,
            protection=cfg.protection,
            has_gpu_pools=bool(cfg.gpu_pools),
            accelerator_limits=accelerator_limits(cfg),
        ),
        opts,
    )
    return {
        "cluster_name": cluster.name,
        "cluster_endpoint": cluster.endpoint,
        "kubeconfig": cluster.kubeconfig,
        "node_service_account": cluster.node_service_account,
    }
