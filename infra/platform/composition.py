"""Composition: turns one checked StackConfig into the platform's components."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence

import pulumi
import pulumi_gcp as gcp
import pulumi_kubernetes as k8s

from components.cluster import (
    AcceleratorLimit,
    AuthorizedNetwork,
    Cluster,
    ClusterArgs,
    MaintenanceWindow,
    NodeAutoProvisioning,
    SystemPool,
    dns_endpoint,
    kubeconfig,
)
from components.compute_class import ComputeClass, ComputeClassArgs, Gpu, Tpu
from components.identity import GoogleAccount, NodeIdentity, NodeIdentityArgs
from components.lws import LeaderWorkerSetApi, LeaderWorkerSetApiArgs
from components.metrics_adapter import MetricsAdapter, MetricsAdapterArgs
from components.model_storage import ModelStorage, ModelStorageArgs
from components.network import Network, NetworkArgs
from components.node_pools import (
    ClusterTarget,
    DedicatedNodeIdentity,
    GpuNodePool,
    GpuPoolArgs,
    NodeAutoscaling,
    TpuSlicePool,
    TpuSlicePoolArgs,
)
from components.scratch_storage import ScratchStorage, ScratchStorageArgs
from components.services import ProjectServices, ProjectServicesArgs, required_services
from components.serving_namespace import ServingNamespace, ServingNamespaceArgs
from infra import contract, versions
from infra.config import ComputeClassConfig, GpuPool, StackConfig, TpuPool, Workload
from infra.names import node_account_id, pathways_account_id, scratch_bucket_name, stack_prefix
from infra.serving import composition as serving
from infra.serving.common import image_exceptions


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


def tpu_pool_args(
    cfg: StackConfig, pool: TpuPool, target: ClusterTarget, pathways_nodes: pulumi.Input[str] | None
) -> TpuSlicePoolArgs:
    """Node counts and placement come from the catalog slice; autoscaling moves in whole slices. A pool that serves
    Pathways runs with Workload Identity off as `pathways_nodes` (the Pathways node account's email)."""
    c, s = pool.config, pool.slice
    dedicated = None
    if pool.name in serving.pathways_pools(cfg):
        if pathways_nodes is None:
            raise ValueError(f"TPU pool {pool.name} serves Pathways: it needs the Pathways node account")
        dedicated = DedicatedNodeIdentity(pathways_nodes, serving.PATHWAYS_NODE_IDENTITY_REASON)
    auto = None
    if c.autoscaling:
        auto = NodeAutoscaling(c.autoscaling.min_slices * s.vms, c.autoscaling.max_slices * s.vms)
    return TpuSlicePoolArgs(
        pool=pool.name,
        target=target,
        node_pools=tpu_node_pool_names(pool.name, c.slices),
        machine_type=s.machine_type,
        node_count=s.vms,
        zones=pool.zones,
        placement_topology=s.topology if s.multi_host else None,
        provisioning=c.provisioning,
        reservation=c.reservation,
        autoscaling=auto,
        compute_class=cfg.compute_class_of(pool.name),
        dedicated_identity=dedicated,
    )


def gpu_pool_args(cfg: StackConfig, pool: GpuPool, target: ClusterTarget) -> GpuPoolArgs:
    """The accelerator type and GPUs per VM come from the catalog entry of the machine type."""
    c = pool.config
    return GpuPoolArgs(
        pool=pool.name,
        target=target,
        machine_type=c.machine_type,
        accelerator=pool.gpu.gke_accelerator,
        gpus_per_node=pool.gpus_per_vm,
        driver_version=c.driver_version,
        zones=pool.zones,
        min_nodes_per_zone=c.min_nodes_per_zone,
        max_nodes_per_zone=c.max_nodes_per_zone,
        provisioning=c.provisioning,
        reservation=c.reservation,
        local_ssd_count=c.local_ssd_count,
        secondary_boot_disk_image=c.secondary_boot_disk_image,
        compute_class=cfg.compute_class_of(pool.name),
    )


def compute_class_args(cfg: StackConfig, cc: ComputeClassConfig, node_service_account: pulumi.Input[str]) -> ComputeClassArgs:
    """A class requests its pool's machine and accelerator and selects the pool's node pools first."""
    accelerator: Tpu | Gpu
    if cc.pool in cfg.tpu_pools:
        tpu = cfg.tpu_pools[cc.pool]
        s = tpu.slice
        accelerator = Tpu(type=s.generation.gke_accelerator, count=s.chips_per_vm, topology=s.topology)
        machine_type, zones, reservation = s.machine_type, tpu.zones, tpu.config.reservation
        node_pools = tpu_node_pool_names(cc.pool, tpu.config.slices)
    else:
        gpu = cfg.gpu_pools[cc.pool]
        driver = "latest" if gpu.config.driver_version == "LATEST" else "default"
        accelerator = Gpu(type=gpu.gpu.gke_accelerator, count=gpu.gpus_per_vm, driver_version=driver)
        machine_type, zones, reservation = gpu.config.machine_type, gpu.zones, gpu.config.reservation
        node_pools = (cc.pool,)
    return ComputeClassArgs(
        machine_type=machine_type,
        accelerator=accelerator,
        zones=zones,
        reservation=reservation,
        ladder=cc.ladder,
        node_pools=node_pools,
        project=cfg.project,
        node_service_account=node_service_account,
        node_pool_auto_creation=cc.node_pool_auto_creation,
        active_migration=cc.active_migration,
        when_unsatisfiable=cc.when_unsatisfiable,
    )


def _ca_certificate(master_auth: object) -> str:
    """The SDK hands nested invoke results back as dicts with snake_case keys, not result objects."""
    if isinstance(master_auth, dict):
        return str(master_auth["cluster_ca_certificate"])
    return str(master_auth.cluster_ca_certificate)  # type: ignore[attr-defined]


def _existing_dns_endpoint(configs: Sequence[object]) -> str:
    """An existing cluster's DNS-based endpoint (getCluster's control_plane_endpoints_configs[0].dns_endpoint_configs
    [0]), refused unless it admits traffic from outside Google: CI's runners reach the cluster through it."""

    def part(value: object, name: str) -> object:
        return value.get(name) if isinstance(value, dict) else getattr(value, name, None)

    dns = [d for c in configs or [] for d in part(c, "dns_endpoint_configs") or []]  # type: ignore[attr-defined]
    if not dns or not part(dns[0], "endpoint") or part(dns[0], "allow_external_traffic") is not True:
        raise pulumi.RunError(
            "cluster.existing: its DNS-based control-plane endpoint is off or refuses external traffic; enable it "
            "with external traffic allowed (the Kubernetes provider, in CI too, connects through it)"
        )
    return dns_endpoint({"dns_endpoint_config": dns[0]})


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


def cluster_args(
    cfg: StackConfig,
    prefix: str,
    network: tuple[pulumi.Input[str], pulumi.Input[str], str, str],
    node_service_account: pulumi.Input[str],
) -> ClusterArgs:
    """`network` is what `_network` returns: (network, subnetwork, pods range, services range)."""
    network_name, subnetwork, pods, services_range = network
    c = cfg.cluster
    return ClusterArgs(
        project=cfg.project,
        region=cfg.region,
        prefix=prefix,
        network=network_name,
        subnetwork=subnetwork,
        pods_range_name=pods,
        services_range_name=services_range,
        master_cidr=cfg.network.master_cidr,
        node_service_account=node_service_account,
        release_channel=c.release_channel,
        auto_upgrade=c.auto_upgrade,
        maintenance_window=MaintenanceWindow(
            c.maintenance_window.start_time, c.maintenance_window.end_time, c.maintenance_window.recurrence
        ),
        authorized_networks=tuple(AuthorizedNetwork(n.cidr, n.name) for n in c.authorized_networks),
        ip_endpoint=cfg.ip_endpoint,
        gateway_api_channel=c.gateway_api_channel,
        http_load_balancing=c.http_load_balancing,
        secrets_encryption_key=c.secrets_encryption_key,
        system_pool=SystemPool(c.system_pool.machine_type, c.system_pool.min_nodes_per_zone, c.system_pool.max_nodes_per_zone),
        node_auto_provisioning=NodeAutoProvisioning(
            c.node_auto_provisioning.enabled, c.node_auto_provisioning.cpu_max, c.node_auto_provisioning.memory_max_gb
        ),
        hpa_profile=c.hpa_profile,
        managed_prometheus=cfg.observability.managed_prometheus,
        auto_monitoring=cfg.observability.auto_monitoring,
        dcgm=bool(cfg.gpu_pools) and cfg.observability.dcgm,
        protect=cfg.protection.protect,
        deletion_protection=cfg.protection.deletion_protection,
        accelerator_limits=accelerator_limits(cfg),
    )


def provider_labels(cfg: StackConfig) -> dict[str, str]:
    """Labels every GCP resource of the stack carries, whichever program creates it: `stack` tells two stacks of one
    environment (or one project) apart; `environment` is the kind of stack, not a name."""
    return {"managed-by": "pulumi", "app": "gke-inference", "environment": cfg.environment, "stack": cfg.stack}


def build(cfg: StackConfig) -> dict[str, pulumi.Input[object]]:
    """Create every component of the platform stack; returns its outputs, the contract the serving stack reads."""
    labels = provider_labels(cfg)
    bootstrap = gcp.Provider("gcp-bootstrap", project=cfg.project, region=cfg.region, default_labels=labels)
    prefix = stack_prefix(cfg)
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
    identity = NodeIdentity(
        "node-identity", NodeIdentityArgs(cfg.project, node_account_id(prefix), f"GKE nodes of {prefix}"), opts
    )
    pathways_nodes = None
    if serving.pathways_pools(cfg):
        # Pathways pods act as their nodes (Workload Identity off on their pools): an account of their own, never
        # the general one, with the general one's project roles and the bucket grants below.
        pathways_identity = NodeIdentity(
            "pathways-node-identity",
            NodeIdentityArgs(cfg.project, pathways_account_id(prefix), f"GKE nodes serving Pathways in {prefix}"),
            opts,
        )
        pathways_nodes = GoogleAccount("pathways-nodes", pathways_identity.email)

    if cfg.cluster.existing is not None:
        found = gcp.container.get_cluster_output(
            name=cfg.cluster.existing.name,
            location=cfg.cluster.existing.location,
            project=cfg.project,
            opts=pulumi.InvokeOutputOptions(provider=gcp_provider),
        )
        cluster_name: pulumi.Output[str] = found.name
        endpoint: pulumi.Output[str] = found.control_plane_endpoints_configs.apply(_existing_dns_endpoint)
        kube: pulumi.Output[str] = pulumi.Output.secret(
            pulumi.Output.all(found.name, endpoint).apply(lambda v: kubeconfig(str(v[0]), str(v[1])))
        )
        ca_certificate: pulumi.Output[str] = found.master_auths.apply(lambda auths: _ca_certificate(auths[0]))
        subnetwork: pulumi.Input[str] | None = cfg.network.existing.subnetwork if cfg.network.existing else None
    else:
        network = _network(cfg, prefix, opts)
        cluster = Cluster("cluster", cluster_args(cfg, prefix, network, identity.email), opts)
        cluster_name, endpoint, kube, subnetwork = cluster.name, cluster.endpoint, cluster.kubeconfig, network[1]
        ca_certificate = cluster.ca_certificate

    target = ClusterTarget(
        cfg.project, cfg.region, cluster_name, identity.email, cfg.cluster.auto_upgrade, cfg.protection.protect
    )
    for name, tpu in cfg.tpu_pools.items():
        TpuSlicePool(name, tpu_pool_args(cfg, tpu, target, pathways_nodes.email if pathways_nodes else None), opts)
    for name, gpu in cfg.gpu_pools.items():
        GpuNodePool(name, gpu_pool_args(cfg, gpu, target), opts)

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
            readers=serving.bucket_members(cfg, cfg.workloads.values(), pathways_nodes),
            protect=cfg.protection.protect,
            retain_on_delete=cfg.protection.retain_on_delete,
            kms_key=cfg.model_storage.kms_key,
        ),
        opts,
    )

    # The platform's own Kubernetes objects: the serving namespaces and their accounts, compute classes, shared APIs.
    k8s_provider = k8s.Provider("k8s", kubeconfig=kube, enable_server_side_apply=True)
    k8s_opts = pulumi.ResourceOptions(providers=[k8s_provider])
    namespaces: dict[str, list[Workload]] = defaultdict(list)
    for workload in cfg.workloads.values():
        namespaces[workload.config.namespace].append(workload)
    for namespace, members in sorted(namespaces.items()):
        level, reason = serving.pod_security(members)
        accounts = tuple(sorted(w.service_account for w in members))
        ServingNamespace(namespace, ServingNamespaceArgs(accounts, level, reason, gateway_routes=cfg.gateway.enabled), k8s_opts)
    for name, cc in cfg.compute_classes.items():
        ComputeClass(name, compute_class_args(cfg, cc, identity.email), k8s_opts)
    shared_serving_api(cfg, opts, k8s_opts)
    if serving.pathways_pools(cfg):
        ScratchStorage(
            "scratch",
            ScratchStorageArgs(
                project=cfg.project,
                bucket_name=scratch_bucket_name(cfg.bucket_name),
                location=cfg.bucket_location,
                ttl_days=serving.SCRATCH_TTL_DAYS,
                writers=serving.bucket_members(
                    cfg, [w for w in cfg.workloads.values() if w.config.engine == "jetstream-pathways"], pathways_nodes
                ),
                protect=cfg.protection.protect,
                kms_key=cfg.model_storage.kms_key,
            ),
            # It reuses the model bucket's CMEK grant.
            pulumi.ResourceOptions.merge(opts, pulumi.ResourceOptions(depends_on=[storage])),
        )
    return contract.exports(
        {
            "cluster_name": cluster_name,
            "cluster_endpoint": endpoint,
            "cluster_ca_certificate": ca_certificate,
            "kubeconfig": kube,
            "subnetwork": subnetwork or "",
            "node_service_account": identity.email,
            "pathways_node_service_account": pathways_nodes.email if pathways_nodes else "",
            "model_bucket": storage.bucket,
            "node_pools": contract.as_json(pool_shapes(cfg)),
            "compute_classes": contract.as_json({name: cc.pool for name, cc in cfg.compute_classes.items()}),
            "namespaces": contract.as_json(
                {ns: sorted(w.service_account for w in members) for ns, members in sorted(namespaces.items())}
            ),
        }
    )


def pool_shapes(cfg: StackConfig) -> dict[str, str]:
    """Each configured accelerator pool's shape, as the serving layer places onto it."""
    shapes = {name: tpu.slice.shape for name, tpu in cfg.tpu_pools.items()}
    return shapes | {name: f"{gpu.gpus_per_vm}x {gpu.gpu.name}" for name, gpu in cfg.gpu_pools.items()}


def shared_serving_api(cfg: StackConfig, gcp_opts: pulumi.ResourceOptions, k8s_opts: pulumi.ResourceOptions) -> None:
    """What every serving stack relies on and none may delete: the LeaderWorkerSet controller and CRD, and the
    custom-metrics adapter the HPAs read."""
    if cfg.observability.custom_metrics_adapter and any(w.config.autoscaling for w in cfg.workloads.values()):
        MetricsAdapter(
            "metrics-adapter",
            MetricsAdapterArgs(
                cfg.project, versions.METRICS_ADAPTER_IMAGE.ref, image_exceptions([versions.METRICS_ADAPTER_IMAGE])
            ),
            gcp_opts,
            k8s_opts,
        )
    if serving.uses_leader_worker_sets(cfg):
        LeaderWorkerSetApi("lws", LeaderWorkerSetApiArgs(versions.LWS_CHART.chart, versions.LWS_CHART.version), k8s_opts)
