"""TPU and GPU pools against the catalog: shapes, machine types, zones of the region, capacity models."""

from __future__ import annotations

from infra.config.checks.context import CheckContext, in_region
from infra.config.errors import ns_path, one_of
from infra.config.model import GpuPool, TpuPool
from infra.config.schema import GpuPoolConfig, TpuPoolConfig


def _zones_for(
    ctx: CheckContext, path: str, wanted: tuple[str, ...] | None, offered: tuple[str, ...], what: str, single: bool
) -> tuple[str, ...]:
    """The pool's zones: as configured, or the region's offered ones (the first only when `single`)."""
    here = tuple(z for z in offered if in_region(z, ctx.region))
    if wanted is None:
        if not here:
            ctx.add(
                path,
                f"{what} is not offered in region {ctx.region}",
                f"a region among {sorted({z.rsplit('-', 1)[0] for z in offered})}",
                ctx.region,
            )
        return here[:1] if single else here
    for z in wanted:
        if not in_region(z, ctx.region):
            ctx.add(path, f"zone {z} is outside the cluster region {ctx.region}", f"zones of {ctx.region}", z)
        elif z not in offered:
            ctx.add(
                path,
                f"{what} is not offered in {z} (catalog {ctx.catalog.as_of})",
                f"zones among {', '.join(here) or 'none in ' + ctx.region}",
                z,
            )
    if len(set(wanted)) != len(wanted):
        ctx.add(path, "duplicate zone", "distinct zones", list(wanted))
    return wanted


def tpu_pool(ctx: CheckContext, name: str, c: TpuPoolConfig) -> TpuPool | None:
    """The pool with its catalog slice; None when the shape is unknown, so workloads naming it are skipped."""
    gen = ctx.catalog.tpus[c.generation]
    base = ("tpu_pools", name)
    if c.topology not in gen.shapes:
        ctx.add(ns_path(*base, "topology"), f"not a {c.generation} slice topology", one_of(gen.shapes), c.topology)
        return None
    allowed = gen.shapes[c.topology]
    machine = c.machine_type or allowed[0]
    if machine not in allowed:
        ctx.add(
            ns_path(*base, "machine_type"),
            f"{c.generation} topology {c.topology} is formed by other machine types",
            one_of(allowed),
            machine,
        )
        return None
    slice_ = ctx.catalog.tpu_slice(c.generation, c.topology, machine)
    zones = _zones_for(ctx, ns_path(*base, "zones"), c.zones, gen.zones, f"TPU {c.generation}", single=True)
    if slice_.multi_host and len(zones) != 1:
        ctx.add(
            ns_path(*base, "zones"),
            f"a multi-host {c.topology} slice lives in exactly one zone",
            "exactly one zone",
            list(zones),
        )
    if c.node_count is not None and c.node_count != slice_.vms:
        ctx.add(
            ns_path(*base, "node_count"),
            f"a {c.generation} {c.topology} slice on {machine} is {slice_.vms} node(s); each node pool holds one whole slice",
            str(slice_.vms),
            c.node_count,
        )
    _check_capacity(ctx, base, c.provisioning, c.reservation)
    if c.autoscaling and slice_.multi_host and c.autoscaling.max_slices > 1:
        ctx.add(
            ns_path(*base, "autoscaling", "max_slices"),
            "a multi-host node pool holds exactly one slice; add slices with `slices`",
            "1",
            c.autoscaling.max_slices,
        )
    if c.autoscaling and c.autoscaling.min_slices > c.autoscaling.max_slices:
        ctx.add(
            ns_path(*base, "autoscaling", "min_slices"),
            "min_slices exceeds max_slices",
            f"<= {c.autoscaling.max_slices}",
            c.autoscaling.min_slices,
        )
    return TpuPool(name, c, slice_, zones)


def _check_capacity(ctx: CheckContext, base: tuple[str, ...], provisioning: str, reservation: str | None) -> None:
    if provisioning == "reservation" and not reservation:
        ctx.add(ns_path(*base, "reservation"), "provisioning 'reservation' needs a reservation name", "a reservation name", None)
    if provisioning != "reservation" and reservation:
        ctx.add(ns_path(*base, "provisioning"), "a reservation is named but not consumed", "'reservation'", provisioning)


def gpu_pool(ctx: CheckContext, name: str, c: GpuPoolConfig) -> GpuPool | None:
    """The pool with its catalog GPU; None when GPU or machine type is unknown."""
    base = ("gpu_pools", name)
    gpu = ctx.catalog.gpus.get(c.gpu)
    if gpu is None:
        ctx.add(ns_path(*base, "gpu"), "not a catalog GPU", one_of(ctx.catalog.gpus), c.gpu)
        return None
    if c.machine_type not in gpu.machine_types:
        owner = ctx.catalog.gpu_for_machine(c.machine_type)
        why = f"{c.machine_type} carries {owner.gke_accelerator}" if owner else f"{c.machine_type} takes no {gpu.gke_accelerator}"
        ctx.add(ns_path(*base, "machine_type"), why, one_of(gpu.machine_types), c.machine_type)
        return None
    zones = _zones_for(ctx, ns_path(*base, "zones"), c.zones, gpu.zones, gpu.gke_accelerator, single=False)
    if c.min_nodes_per_zone > c.max_nodes_per_zone:
        ctx.add(
            ns_path(*base, "min_nodes_per_zone"),
            "exceeds max_nodes_per_zone",
            f"<= {c.max_nodes_per_zone}",
            c.min_nodes_per_zone,
        )
    _check_capacity(ctx, base, c.provisioning, c.reservation)
    return GpuPool(name, c, gpu, zones)
