"""What serving relies on: compute classes, the model bucket and its caches, the gateway and monitoring."""

from __future__ import annotations

from components.endpoint_picker import CHART_RESOURCES, PickerResources
from infra import sizing
from infra.config.checks.context import CheckContext, in_region
from infra.config.checks.network_cluster import check_kms_key
from infra.config.errors import Problem, ns_path, one_of
from infra.config.schema import GpuPoolConfig, PickerConfig, TpuPoolConfig


def check_compute_classes(ctx: CheckContext) -> None:
    claimed: dict[str, str] = {}
    for name, cc in ctx.sections.compute_classes.items():
        if cc.pool in claimed:
            ctx.add(
                ns_path("compute_classes", name, "pool"),
                f"pool {cc.pool} is already selected by compute class {claimed[cc.pool]} (a node carries one class label)",
                "one class per pool",
                cc.pool,
            )
        claimed.setdefault(cc.pool, name)
        base = ("compute_classes", name)
        pools: dict[str, TpuPoolConfig | GpuPoolConfig] = {**ctx.sections.tpu_pools, **ctx.sections.gpu_pools}
        if cc.pool not in pools:
            ctx.add(
                ns_path(*base, "pool"),
                f"no TPU or GPU pool named {cc.pool}",
                one_of(pools) if pools else "a pool name",
                cc.pool,
            )
            continue
        if "reservation" in cc.ladder and not pools[cc.pool].reservation:
            ctx.add(
                ns_path(*base, "ladder"),
                f"pool {cc.pool} names no reservation to try first",
                f"a reservation on {cc.pool}",
                list(cc.ladder),
            )
        if len(set(cc.ladder)) != len(cc.ladder) or not cc.ladder:
            ctx.add(ns_path(*base, "ladder"), "each capacity rung once", "distinct rungs", list(cc.ladder))
        if "flex_start" in cc.ladder and "spot" in cc.ladder and cc.ladder.index("spot") < cc.ladder.index("flex_start"):
            ctx.add(ns_path(*base, "ladder"), "spot is the last resort", "flex_start before spot", list(cc.ladder))


def check_storage(ctx: CheckContext, pool_zones: set[str]) -> None:
    ms = ctx.sections.model_storage
    location = (ms.location or ctx.region).lower()
    if ms.location and location != ctx.region:
        ctx.add(
            ns_path("model_storage", "location"),
            "a bucket outside the cluster region pays egress and loads slowly",
            ctx.region,
            ms.location,
        )
    if ms.kms_key:
        check_kms_key(ctx, ns_path("model_storage", "kms_key"), ms.kms_key, location)
    if ms.anywhere_cache.enabled and ms.anywhere_cache.zones is not None:
        zones = ms.anywhere_cache.zones
        path = ns_path("model_storage", "anywhere_cache", "zones")
        for z in zones:
            if not in_region(z, location):
                ctx.add(path, f"zone {z} is not in bucket location {location.upper()}", f"zones of {location}", z)
            elif z not in pool_zones:
                ctx.add(
                    path,
                    f"no accelerator pool runs in {z}; the cache serves same-zone clients only",
                    one_of(pool_zones) if pool_zones else "a pool zone",
                    z,
                )
        if len(set(zones)) != len(zones):
            ctx.add(path, "one cache per zone per bucket", "distinct zones", list(zones))


def picker_resources(picker: PickerConfig | None) -> PickerResources:
    """The chart's sizing, or the configured requests with the chart's memory limit-to-request ratio."""
    if picker is None:
        return CHART_RESOURCES
    memory = round(picker.memory_gib * 1024)
    ratio = CHART_RESOURCES.memory_limit_mib / CHART_RESOURCES.memory_mib
    return PickerResources(round(picker.cpu * 1000), memory, round(memory * ratio))


def check_picker_fits(ctx: CheckContext) -> None:
    """Each vLLM pool's picker runs on the system pool (it tolerates no accelerator taint): one must fit a node there,
    or it stays Pending (or node auto-provisioning buys a node the plan did not price). E2/N2/N2D shapes only."""
    gw, system = ctx.sections.gateway, ctx.sections.cluster.system_pool
    workloads = ctx.sections.workloads
    if not any(n in workloads and workloads[n].engine == "vllm" for n in exposed_names(ctx)):
        return
    machine = sizing.predefined_machine(system.machine_type)
    if machine is None:
        return
    need, node = picker_resources(gw.picker), sizing.schedulable(machine)
    if need.cpu_millis <= node.cpu_millis and need.memory_mib <= node.memory_mib:
        return
    source = "gateway.picker" if gw.picker else "llm-d-router v0.10.0's chart default"
    ctx.add(
        ns_path("gateway", "picker") if gw.picker else ns_path("cluster", "system_pool", "machine_type"),
        f"the endpoint picker requests {need.cpu_millis / 1000:g} CPU / {need.memory_mib / 1024:g} GiB ({source}); "
        f"one {system.machine_type} node of the system pool schedules {node.cpu_millis / 1000:g} CPU / "
        f"{node.memory_mib / 1024:.1f} GiB",
        "a system-pool machine type that fits it (e.g. e2-standard-16), or smaller gateway.picker requests",
        gw.picker.model_dump() if gw.picker else system.machine_type,
    )


def check_iap(ctx: CheckContext) -> None:
    """IAP on needs its OAuth client (ID and secret), in every environment; a secret with IAP off is refused."""
    gw, secret = ctx.sections.gateway, ctx.sections.iap_client_secret
    default = " (the default for an external gateway)" if gw.iap is None else ""
    on = gw.enabled and gw.iap_enabled
    if on and (gw.iap is None or gw.iap.client_id is None):
        ctx.add(
            ns_path("gateway", "iap", "client_id"),
            f"IAP is on{default}; GKE's GCPBackendPolicy needs the OAuth client it signs users in with",
            "an OAuth client ID (<number>-<id>.apps.googleusercontent.com), or iap.enabled: false",
            None,
        )
    if on and secret is None:
        ctx.add(
            ns_path("iap_client_secret"),
            f"IAP is on{default}; the OAuth client's secret is missing",
            "the secret set with `pulumi config set --secret iap_client_secret`",
            None,
        )
    if not on and secret is not None:
        # Never echoed: the value is a secret.
        ctx.problems.append(
            Problem(ns_path("iap_client_secret"), "set while the gateway's IAP is off", "no secret, or IAP on", "a secret")
        )


def check_gateway_and_monitoring(ctx: CheckContext) -> None:
    gw, cluster, net = ctx.sections.gateway, ctx.sections.cluster, ctx.sections.network
    if gw.enabled:
        if net.proxy_only_cidr is None:
            ctx.add(
                ns_path("network", "proxy_only_cidr"),
                f"{gw.gateway_class} needs an ACTIVE REGIONAL_MANAGED_PROXY subnet in {ctx.region}"
                + (
                    " (with network.existing: its range, which the NetworkPolicies admit the proxies from)"
                    if net.existing
                    else ""
                ),
                "a CIDR",
                None,
            )
        if cluster.gateway_api_channel == "CHANNEL_DISABLED":
            ctx.add(
                ns_path("cluster", "gateway_api_channel"),
                "the Inference Gateway needs the Gateway API",
                "CHANNEL_STANDARD",
                cluster.gateway_api_channel,
            )
        if gw.external and gw.tls is None and ctx.sections.environment != "dev":
            ctx.add(
                ns_path("gateway", "tls"),
                f"an external gateway serves HTTPS only outside dev ({ctx.sections.environment})",
                "a Certificate Manager certificate",
                None,
            )
        check_routes(ctx)
        check_picker_fits(ctx)
        if not cluster.http_load_balancing:
            ctx.add(
                ns_path("cluster", "http_load_balancing"),
                "the GKE Gateway controller needs the HTTP load balancing add-on",
                "true",
                False,
            )
    check_iap(ctx)
    if ctx.sections.workloads and not ctx.sections.observability.managed_prometheus:
        ctx.add(
            ns_path("observability", "managed_prometheus"),
            "serving workloads get PodMonitorings, which need Managed Prometheus",
            "true",
            False,
        )


def exposed_names(ctx: CheckContext) -> tuple[str, ...]:
    gw, workloads = ctx.sections.gateway, ctx.sections.workloads
    if not gw.enabled:
        return ()
    return gw.routes if gw.routes is not None else tuple(n for n, w in workloads.items() if w.batch is None)


def check_routes(ctx: CheckContext) -> None:
    """Routes name real-time servers, and no two share a model name (each model has one path on the host)."""
    gw, workloads = ctx.sections.gateway, ctx.sections.workloads
    names = exposed_names(ctx)
    for i, name in enumerate(gw.routes or ()):
        if name not in workloads:
            ctx.add(
                ns_path("gateway", "routes", i),
                f"no workload named {name}",
                one_of(workloads) if workloads else "a workload",
                name,
            )
        elif workloads[name].batch is not None:
            ctx.add(ns_path("gateway", "routes", i), f"{name} is a batch Job: nothing to route to", "a real-time server", name)
    by_model: dict[str, list[str]] = {}
    for name in names:
        if name in workloads:
            by_model.setdefault(workloads[name].model, []).append(name)
    for model, served in sorted(by_model.items()):
        if len(served) > 1:
            ctx.add(
                ns_path("gateway", "routes"),
                f"{', '.join(served)} all serve {model}: one gateway routes a model name to one backend",
                "one exposed workload per model (list the routes explicitly)",
                served,
            )
