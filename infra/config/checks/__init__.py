"""Cross-field checks (catalog, sizing, references between sections), one module per area.

``resolve`` runs them in a fixed order; pools resolve before the workloads that name them, and
everything that reads pool zones runs after the pools.
"""

from __future__ import annotations

from infra.config.checks.applicability import check_section_keys, check_workload_keys
from infra.config.checks.bounds import check_bounds
from infra.config.checks.capacity import check_capacity
from infra.config.checks.context import CheckContext
from infra.config.checks.names import check_names
from infra.config.checks.network_cluster import check_cluster, check_network
from infra.config.checks.operations import check_operations
from infra.config.checks.pools import gpu_pool, tpu_pool
from infra.config.checks.serving import check_compute_classes, check_gateway_and_monitoring, check_storage
from infra.config.checks.workloads import check_pathways_pools, workload
from infra.config.model import GpuPool, TpuPool, Workload

__all__ = ["CheckContext", "resolve"]


def resolve(ctx: CheckContext) -> tuple[dict[str, TpuPool], dict[str, GpuPool], dict[str, Workload]]:
    """Every check, in order; a pool or workload whose own checks fail is left out of the result."""
    s = ctx.sections
    check_network(ctx)
    check_cluster(ctx)
    check_workload_keys(ctx)
    check_section_keys(ctx)
    check_names(ctx)
    tpu = {n: t for n, c in s.tpu_pools.items() if (t := tpu_pool(ctx, n, c))}
    gpu = {n: g for n, gc in s.gpu_pools.items() if (g := gpu_pool(ctx, n, gc))}
    workloads = {n: w for n, c in s.workloads.items() if (w := workload(ctx, n, c, tpu, gpu))}
    check_pathways_pools(ctx, workloads)
    check_capacity(ctx, tpu, gpu, workloads)
    check_compute_classes(ctx)
    zones = {z for p in tpu.values() for z in p.zones} | {z for p in gpu.values() for z in p.zones}
    check_storage(ctx, zones)
    check_gateway_and_monitoring(ctx)
    check_bounds(ctx, workloads)
    check_operations(ctx, workloads)
    return tpu, gpu, workloads
