"""Composition: turns one checked StackConfig into the platform's components."""

from __future__ import annotations

from collections import defaultdict

import pulumi
import pulumi_gcp as gcp
import pulumi_kubernetes as k8s

from components.cluster import AcceleratorLimit, Cluster, ClusterArgs, kubeconfig
from components.compute_class import ComputeClass, ComputeClassArgs
from components.identity import NodeIdentity, NodeIdentityArgs
from components.model_storage import ModelStorage, ModelStorageArgs, Reader
from components.network import Network, NetworkArgs
from components.node_pools import ClusterTarget, GpuNodePool, GpuPoolArgs, TpuSlicePool, TpuSlicePoolArgs
from components.services import ProjectServices, ProjectServicesArgs, required_services
from components.serving_namespace import ServingNamespace, ServingNamespaceArgs
from infra.config import GpuPool, StackConfig, TpuPool


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


def tpu_node_pool_names(name: str, slices: int) -> tuple[str, ...]:
    """Physical node-pool names of a TPU pool: one per slice."""
    return (name,) if slices == 1 else tuple(f"{name}-{i}" for i in range(slices))


def _ca_certificate(master_auth: object) -> str:
    """The SDK hands nested invoke results back as dicts with snake_case keys, not result objects."""
    if isinstance(master_auth, dict):
        return str(master_auth["cluster_ca_certificate"])
    return str(master_auth.cluster_ca_certificate)  # type: ignore[attr-defined]


def _network(
    cfg: StackConfig, prefix: str, opts: pulumi.ResourceOptions
) -> tuple[pulumi.Input[str], pulumi.Input[str], str, str]:
    existing = cfg.network.existing
    if existing is not None:
        return existing.network, existing.subnetwork, existing.pods_range_name, existing.services_range_name
    net = Network(
        "network",
        NetworkArgs(
            project=cfg.project,
            region=cfg.region,
            prefix=prefix,
            subnet_cidr=cfg.network.subnet_cidr,
            pods_cidr=cfg.network.pods_cidr,
            services_cidr=cfg.network.services_cidr,
            proxy_only_cidr=cfg.network.proxy_only_cidr,
            protect=cfg.protection.protect,
        ),
        opts,
    )
    return net.network, net.subnetwork, net.pods_range_name, net.services_range_name


def build(cfg: StackConfig) -> dict[str, pulumi.Input[object]]:
    """Create every component of the stack; returns the stack outputs."""
    labels = {"managed-by": "pulumi", "app": "gke-inference", "environment": cfg.environment}
    bootstrap = gcp.Provider("gcp-bootstrap", project=cfg.project, region=cfg.region, default_labels=labels)
    prefix = resource_prefix(cfg)
    services = ProjectServices(
        "services",
        ProjectServicesArgs(
            cfg.project,
            required_services(
                tpus=bool(cfg.tpu_pools),
                kms=bool(cfg.cluster.secrets_encryption_key or cfg.model_storage.kms_key),
                gateway=cfg.gateway.enabled,
            ),
        ),
        pulumi.ResourceOptions(providers=[bootstrap]),
    )
    # Every other GCP resource goes through a provider that waits for the APIs to be enabled, so
    # no create call reaches a disabled API on a fresh project (pulumi/pulumi-gcp#574).
    gcp_provider = gcp.Provider(
        "gcp", project=cfg.project, region=cfg.region, default_labels=labels, opts=pulumi.ResourceOptions(depends_on=[services])
    )
    opts = pulumi.ResourceOptions(providers=[gcp_provider])
    identity = NodeIdentity("node-identity", NodeIdentityArgs(cfg.project, prefix), opts)

    if cfg.cluster.existing is not None:
        found = gcp.container.get_cluster_output(
            name=cfg.cluster.existing.name,
            location=cfg.cluster.existing.location,
            project=cfg.project,
            opts=pulumi.InvokeOutputOptions(provider=gcp_provider),
        )
        cluster_name: pulumi.Output[str] = found.name
        endpoint: pulumi.Output[str] = found.endpoint
        kube: pulumi.Output[str] = pulumi.Output.secret(
            pulumi.Output.all(found.name, found.endpoint, found.master_auths).apply(
                lambda v: kubeconfig(str(v[0]), str(v[1]), _ca_certificate(v[2][0]))
            )
        )
    else:
        network, subnetwork, pods, services_range = _network(cfg, prefix, opts)
        cluster = Cluster(
            "cluster",
            ClusterArgs(
                project=cfg.project,
                region=cfg.region,
                prefix=prefix,
                network=network,
                subnetwork=subnetwork,
                pods_range_name=pods,
                services_range_name=services_range,
                master_cidr=cfg.network.master_cidr,
                config=cfg.cluster,
                observability=cfg.observability,
                protection=cfg.protection,
                node_service_account=identity.email,
                has_gpu_pools=bool(cfg.gpu_pools),
                accelerator_limits=accelerator_limits(cfg),
            ),
            opts,
        )
        cluster_name, endpoint, kube = cluster.name, cluster.endpoint, cluster.kubeconfig

    target = ClusterTarget(
        cfg.project, cfg.region, cluster_name, identity.email, cfg.cluster.auto_upgrade, cfg.protection.protect
    )
    for name, tpu in cfg.tpu_pools.items():
        TpuSlicePool(name, TpuSlicePoolArgs(tpu, target, cfg.compute_class_of(name)), opts)
    for name, gpu in cfg.gpu_pools.items():
        GpuNodePool(name, GpuPoolArgs(gpu, target, cfg.compute_class_of(name)), opts)

    storage = ModelStorage(
        "models",
        ModelStorageArgs(
            project=cfg.project,
            bucket_name=cfg.bucket_name,
            location=cfg.bucket_location,
            versioning=cfg.model_storage.versioning,
            soft_delete_days=cfg.model_storage.soft_delete_days,
            cache_zones=cfg.cache_zones,
            cache_ttl_hours=cfg.model_storage.anywhere_cache.ttl_hours,
            readers=tuple(sorted({Reader(w.config.namespace, w.service_account) for w in cfg.workloads.values()}, key=str)),
            protection=cfg.protection,
            kms_key=cfg.model_storage.kms_key,
        ),
        opts,
    )

    # The serving layer deploys into this cluster in the same stack, through this provider.
    k8s_provider = k8s.Provider("k8s", kubeconfig=kube, enable_server_side_apply=True)
    k8s_opts = pulumi.ResourceOptions(providers=[k8s_provider])
    namespaces: dict[str, list[str]] = defaultdict(list)
    for workload in cfg.workloads.values():
        namespaces[workload.config.namespace].append(workload.service_account)
    for namespace, accounts in sorted(namespaces.items()):
        ServingNamespace(namespace, ServingNamespaceArgs(tuple(sorted(accounts))), k8s_opts)
    for name, cc in cfg.compute_classes.items():
        pool: TpuPool | GpuPool
        if cc.pool in cfg.tpu_pools:
            pool = cfg.tpu_pools[cc.pool]
            node_pools = tpu_node_pool_names(cc.pool, pool.config.slices)
        else:
            pool, node_pools = cfg.gpu_pools[cc.pool], (cc.pool,)
        ComputeClass(name, ComputeClassArgs(pool, cc, node_pools, cfg.project, identity.email), k8s_opts)

    return {
        "cluster_name": cluster_name,
        "cluster_endpoint": endpoint,
        "kubeconfig": kube,
        "node_service_account": identity.email,
        "model_bucket": storage.bucket,
        "model_bucket_url": storage.url,
    }
