"""Memory-fit errors that blame what the user set: the model and the pool it names (or `gpus`, when set), with the
smallest catalog shape that holds the model, derived from the catalog rather than typed.

A workload that sets no `gpus` gets the fewest GPUs of its pool that hold it (``sizing.smallest_gpu_count``), so
when that fails, or the replica needs more nodes than the pool has, the key to change is `gpu_pool` (another GPU,
a larger pool) or the model, never a `gpus` key the stack does not contain.
"""

from __future__ import annotations

from infra import sizing
from infra.catalog import GpuType, ModelArch
from infra.config.checks.context import CheckContext
from infra.config.errors import ns_path
from infra.config.model import GpuPool, TpuPool
from infra.config.schema import WorkloadConfig


def _what(c: WorkloadConfig, sequences: int) -> str:
    return f"{c.model} ({c.weight_dtype} weights, {c.kv_cache_dtype} KV, {sequences} x {c.max_context} tokens)"


def server_fit_kwargs(c: WorkloadConfig) -> dict[str, object]:
    """What a vLLM/Triton memory fit reads of the workload (TPU slices; GPUs add the engine: gpu_fit_kwargs)."""
    return dict(
        weight_dtype=c.weight_dtype,
        kv_dtype=c.kv_cache_dtype,
        max_context=c.max_context,
        max_num_seqs=c.sequences,
        gpu_memory_utilization=c.gpu_memory_utilization,
    )


def gpu_fit_kwargs(c: WorkloadConfig) -> dict[str, object]:
    return dict(engine=c.engine, **server_fit_kwargs(c))


def smallest_gpu_shape(ctx: CheckContext, c: WorkloadConfig, model: ModelArch) -> tuple[int, GpuType] | None:
    """The catalog GPU and count that hold one replica with the least accelerator memory (then the fewest GPUs)."""
    options = []
    for gpu in ctx.catalog.gpus.values():
        count = sizing.smallest_gpu_count(model, gpu, **gpu_fit_kwargs(c))  # type: ignore[arg-type]
        if count is not None:
            options.append((count * gpu.memory_gb, count, gpu.name, gpu))
    if not options:
        return None
    _, count, _, gpu = min(options, key=lambda o: o[:3])
    return count, gpu


def _elsewhere(ctx: CheckContext, c: WorkloadConfig, model: ModelArch) -> str:
    shape = smallest_gpu_shape(ctx, c, model)
    if shape is None:
        return "no catalog GPU holds it: fewer max_num_seqs, a shorter max_context or fp8"
    return f"a pool of a GPU that holds it (the smallest: {shape[0]}x {shape[1].name})"


def fit_of(
    ctx: CheckContext,
    base: tuple[str, ...],
    c: WorkloadConfig,
    model: ModelArch,
    pool: GpuPool,
    *,
    fit: sizing.MemoryFit | None = None,
    fewest: int | None = None,
) -> None:
    """The model does not fit: with `gpus` set, too few of them (the fewest that fit, if any); else no count of the
    pool's GPU holds it (another pool, naming the smallest catalog shape that does)."""
    what = _what(c, c.sequences)
    if c.gpus is not None and fit is not None:
        ctx.add(
            ns_path(*base, "gpus"),
            f"{what} needs {fit.required_gib:.1f} GiB but {fit.shape} provides {fit.usable_gib:.1f} GiB",
            f"the fewest {pool.gpu.name} GPUs that hold it, {fewest}" if fewest else _elsewhere(ctx, c, model),
            c.gpus,
        )
        return
    ctx.add(
        ns_path(*base, "gpu_pool"),
        f"{what} does not fit on up to {sizing.MAX_GPUS_PER_REPLICA} {pool.gpu.name} GPUs of gpu_pools.{pool.name}",
        _elsewhere(ctx, c, model),
        pool.name,
    )


def replica_too_big(ctx: CheckContext, base: tuple[str, ...], c: WorkloadConfig, pool: GpuPool, count: int, nodes: int) -> None:
    """The fewest GPUs that hold the model span more nodes than the pool scales to: the pool (or its GPU) is too small."""
    pool_nodes = pool.config.max_nodes_per_zone * len(pool.zones)
    ctx.add(
        ns_path(*base, "gpu_pool"),
        f"{_what(c, c.sequences)} needs {count} {pool.gpu.name} GPUs per replica, {nodes} {pool.config.machine_type} "
        f"node(s), but gpu_pools.{pool.name} scales to {pool_nodes}",
        f"a pool of >= {nodes} nodes (max_nodes_per_zone x zones), or a GPU with more memory",
        pool.name,
    )


def tpu_server_fit_of(
    ctx: CheckContext, base: tuple[str, ...], c: WorkloadConfig, model: ModelArch, pool: TpuPool, fit: sizing.MemoryFit
) -> None:
    """vLLM on TPU does not fit its single-host slice: the smallest single-host shape of the generation that does."""
    gen = pool.slice.generation.name
    smallest = sizing.smallest_tpu_server_slice(ctx.catalog, gen, model, **server_fit_kwargs(c))  # type: ignore[arg-type]
    hint = (
        f"smallest {gen} that fits: {smallest.topology} on {smallest.machine_type}"
        if smallest
        else f"no single-host {gen} slice fits"
    )
    ctx.add(
        ns_path(*base, "tpu_pools"),
        f"{_what(c, c.sequences)} needs {fit.required_gib:.1f} GiB but a slice of tpu_pools.{pool.name} ({fit.shape}) "
        f"provides {fit.usable_gib:.1f} GiB",
        f"a single-host slice with >= {fit.required_gib:.1f} GiB ({hint})",
        fit.shape,
    )
