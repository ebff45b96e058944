"""What the workloads need together: every workload on a pool at its maximum, summed against what the pool scales to;
the endpoint pickers on the system pool; node auto-provisioning's CPU and memory ceilings against all of it.

A workload counts at its maximum: the HPA's max_replicas, a batch Job's parallelism, or its fixed replicas
(``workloads.max_replicas``). On a GPU pool its pods take ``sizing.gpu_pod`` (GPUs, and the node's schedulable
CPU/memory in proportion), packed onto nodes of the pool's machine with ``sizing.nodes_for``; on a TPU pool a replica
takes whole slices (one, or two for disaggregated JetStream on one pool). A compute class that selects a pool places
the pool's workloads through it: they count against that pool, whether or not the class may auto-create node pools
(the plan prices the pool, and node auto-provisioning's accelerator ceilings are the pools' maxima summed,
``infra.platform.composition.accelerator_limits``, so auto-created nodes could only take another pool's room).

``workloads.py`` already refuses a workload that alone outgrows its pool, on the key that sets its replicas; a pool
where that happened gets no second line here (one cause, one line).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from components.cluster import SYSTEM_POOL_ZONES
from infra import sizing
from infra.catalog import MachineShape
from infra.config.checks.context import CheckContext
from infra.config.checks.serving import exposed_names, picker_resources
from infra.config.checks.workloads import max_replicas
from infra.config.errors import ns_path
from infra.config.model import GpuPool, TpuPool, Workload


@dataclass(frozen=True)
class Share:
    """One workload's part of a pool at its maximum."""

    workload: str
    replicas: int
    each: int
    """Per replica: GPUs on a GPU pool, slices on a TPU pool."""
    alone: int
    """Nodes (GPU pool) or slices (TPU pool) the workload needs by itself, as workloads.py counts them."""
    pods: tuple[sizing.Pod, ...] = ()
    """GPU pools: every pod of every replica."""

    def text(self, unit: str) -> str:
        return f"{self.workload} {self.replicas} x {self.each} {unit}"


@dataclass(frozen=True)
class PoolUse:
    """A pool, what it scales to, and what every workload on it needs at once."""

    pool: GpuPool | TpuPool
    shares: tuple[Share, ...]
    needed: int | None
    """Nodes (GPU) or slices (TPU) the shares need together; None when a pod fits no node."""
    capacity: int
    machine: MachineShape
    nodes_per_unit: int
    """Nodes of one unit: 1 on a GPU pool, the slice's VMs on a TPU pool."""
    minimum: int
    """Units the pool keeps however idle: min_nodes_per_zone x zones, or the slices that do not autoscale."""


def gpu_use(ctx: CheckContext, pool: GpuPool, workloads: dict[str, Workload]) -> PoolUse:
    machine = ctx.catalog.machines[pool.config.machine_type]
    shares = []
    for name, w in workloads.items():
        if w.gpu_pool is None or w.gpu_pool.name != pool.name:
            continue
        nodes = sizing.gpu_parallelism(w.gpus, pool.gpus_per_vm, w.config.tensor_parallel).nodes
        pod = sizing.gpu_pod(machine, w.gpus, pool.gpus_per_vm)
        replicas = max_replicas(w.config)
        shares.append(Share(name, replicas, w.gpus, replicas * nodes, (pod,) * (replicas * nodes)))
    node = sizing.Pod(pool.gpus_per_vm, sizing.schedulable(machine))
    needed = sizing.nodes_for([p for s in shares for p in s.pods], node)
    zones = len(pool.zones)
    return PoolUse(
        pool, tuple(shares), needed, pool.config.max_nodes_per_zone * zones, machine, 1, pool.config.min_nodes_per_zone * zones
    )


def tpu_use(ctx: CheckContext, pool: TpuPool, workloads: dict[str, Workload]) -> PoolUse:
    shares = []
    for name, w in workloads.items():
        each = sum(1 for p in w.tpu_pools if p.name == pool.name)
        if each:
            replicas = max_replicas(w.config)
            shares.append(Share(name, replicas, each, replicas * each))
    c = pool.config
    return PoolUse(
        pool,
        tuple(shares),
        sum(s.alone for s in shares),
        c.max_slices,
        ctx.catalog.machines[pool.slice.machine_type],
        pool.slice.vms,
        c.slices * c.slices_per_pool[0],
    )


def pool_uses(
    ctx: CheckContext, tpu: dict[str, TpuPool], gpu: dict[str, GpuPool], workloads: dict[str, Workload]
) -> list[PoolUse]:
    return [tpu_use(ctx, p, workloads) for p in tpu.values()] + [gpu_use(ctx, p, workloads) for p in gpu.values()]


def check_capacity(ctx: CheckContext, tpu: dict[str, TpuPool], gpu: dict[str, GpuPool], workloads: dict[str, Workload]) -> None:
    uses = pool_uses(ctx, tpu, gpu, workloads)
    for use in uses:
        check_pool(ctx, use)
    check_pickers(ctx)
    check_auto_provisioning(ctx, uses)


def _class_of(ctx: CheckContext, pool: str) -> str:
    cls = next((n for n, cc in ctx.sections.compute_classes.items() if cc.pool == pool), None)
    return f", placed through compute class {cls}" if cls else ""


def check_pool(ctx: CheckContext, use: PoolUse) -> None:
    """Two or more workloads that each fit the pool but not together."""
    if len(use.shares) < 2 or any(s.alone > use.capacity for s in use.shares):
        return
    if use.needed is not None and use.needed <= use.capacity:
        return
    pool, n = use.pool, len(use.shares)
    if isinstance(pool, GpuPool):
        zones = len(pool.zones)
        need = use.needed or 0
        shares = ", ".join(s.text(f"{pool.gpu.name} GPU(s)") for s in use.shares)
        gpus = sum(s.replicas * s.each for s in use.shares)
        ctx.add(
            ns_path("gpu_pools", pool.name, "max_nodes_per_zone"),
            f"{n} workloads need {need} {pool.config.machine_type} nodes ({gpus} GPUs) at their maximum{_class_of(ctx, pool.name)} "
            f"({shares}); the pool scales to {use.capacity} ({pool.config.max_nodes_per_zone} per zone x {zones} zone(s), "
            f"{use.capacity * pool.gpus_per_vm} GPUs)",
            f">= {math.ceil(need / zones)}, or fewer replicas",
            pool.config.max_nodes_per_zone,
        )
        return
    c, slice_ = pool.config, pool.slice
    need = use.needed or 0
    shares = ", ".join(s.text("slice(s)") for s in use.shares)
    problem = (
        f"{n} workloads need {need} {slice_.shape} slices ({need * slice_.chips} chips) at their maximum"
        f"{_class_of(ctx, pool.name)} ({shares}); the pool holds {use.capacity} ({use.capacity * slice_.chips} chips)"
    )
    if c.autoscaling and not slice_.multi_host:
        ctx.add(
            ns_path("tpu_pools", pool.name, "autoscaling", "max_slices"),
            problem,
            f">= {math.ceil(need / c.slices)} (x {c.slices} node pool(s)), or fewer replicas",
            c.autoscaling.max_slices,
        )
    else:
        ctx.add(ns_path("tpu_pools", pool.name, "slices"), problem, f">= {need}, or fewer replicas", c.slices)


def picker_count(ctx: CheckContext) -> int:
    """One endpoint picker per exposed vLLM server (its InferencePool's)."""
    workloads = ctx.sections.workloads
    return sum(1 for n in exposed_names(ctx) if n in workloads and workloads[n].engine == "vllm")


def check_pickers(ctx: CheckContext) -> None:
    """The pickers tolerate no accelerator taint, so they land on the system pool: all of them must fit its nodes at
    its maximum. One that fits no node at all is check_picker_fits' line, not this one."""
    count, system = picker_count(ctx), ctx.sections.cluster.system_pool
    machine = sizing.predefined_machine(system.machine_type)
    if count < 2 or machine is None:
        return
    picker = picker_resources(ctx.sections.gateway.picker)
    pod = sizing.Pod(0, sizing.Resources(picker.cpu_millis, picker.memory_mib))
    needed = sizing.nodes_for([pod] * count, sizing.Pod(0, sizing.schedulable(machine)))
    capacity = system.max_nodes_per_zone * SYSTEM_POOL_ZONES
    if needed is None or needed <= capacity:
        return
    ctx.add(
        ns_path("cluster", "system_pool", "max_nodes_per_zone"),
        f"{count} endpoint pickers ({picker.cpu_millis / 1000:g} CPU / {picker.memory_mib / 1024:g} GiB each, one per "
        f"exposed vLLM workload) need {needed} {system.machine_type} nodes; the system pool scales to {capacity} "
        f"({system.max_nodes_per_zone} per zone x {SYSTEM_POOL_ZONES} zones)",
        f">= {math.ceil(needed / SYSTEM_POOL_ZONES)}, a larger system_pool.machine_type, or smaller gateway.picker requests",
        system.max_nodes_per_zone,
    )


def check_auto_provisioning(ctx: CheckContext, uses: list[PoolUse]) -> None:
    """GKE checks node auto-provisioning's CPU and memory limits against every node of the cluster and adds no node
    past them: the nodes the workloads scale to (each pool at least at its minimum, at most at its maximum) plus the
    system pool at its maximum must stay within cpu_max and memory_max_gb."""
    nap, system = ctx.sections.cluster.node_auto_provisioning, ctx.sections.cluster.system_pool
    if not nap.enabled:
        return
    parts: list[tuple[str, int, MachineShape]] = []
    machine = sizing.predefined_machine(system.machine_type)
    if machine is not None:
        parts.append((f"system pool {system.machine_type}", system.max_nodes_per_zone * SYSTEM_POOL_ZONES, machine))
    for use in uses:
        units = min(max(use.needed or 0, use.minimum), use.capacity)
        if units:
            section = "gpu_pools" if isinstance(use.pool, GpuPool) else "tpu_pools"
            shape = use.pool.config.machine_type if isinstance(use.pool, GpuPool) else use.pool.slice.machine_type
            parts.append((f"{section}.{use.pool.name} {shape}", units * use.nodes_per_unit, use.machine))
    for key, limit, unit, per_node in (
        ("cpu_max", nap.cpu_max, "vCPU", lambda m: m.vcpu),
        ("memory_max_gb", nap.memory_max_gb, "GB", lambda m: m.memory_gb),
    ):
        total = math.ceil(sum(nodes * per_node(m) for _, nodes, m in parts))
        if total <= limit:
            continue
        listed = ", ".join(f"{what} {nodes} x {per_node(m):g}" for what, nodes, m in parts)
        ctx.add(
            ns_path("cluster", "node_auto_provisioning", key),
            f"the cluster's nodes at the workloads' maximum have {total} {unit} ({listed}); GKE counts every node "
            "against the limit and adds none past it",
            f">= {total}",
            limit,
        )
