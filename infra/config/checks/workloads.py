"""Workloads: engine against pool kind, references to pools, and the memory fit from infra.sizing."""

from __future__ import annotations

from collections.abc import Collection

from infra import sizing
from infra.catalog import ModelArch
from infra.config.checks.context import CheckContext
from infra.config.checks.fit_errors import fit_of, gpu_fit_kwargs, replica_too_big, server_fit_kwargs, tpu_server_fit_of
from infra.config.errors import ns_path, one_of
from infra.config.model import GpuPool, TpuPool, Workload
from infra.config.schema import WorkloadConfig


def _pool_choices(names: Collection[str], section: str) -> str:
    """What a workload's pool reference may name: the stack's pools of that kind, or a hint to add one."""
    return one_of(names) if names else f"a {section} entry"


def workload(
    ctx: CheckContext, name: str, c: WorkloadConfig, tpu: dict[str, TpuPool], gpu: dict[str, GpuPool]
) -> Workload | None:
    """The workload with its pools and memory fit; None when it cannot be placed, so nothing downstream sees it."""
    base = ("workloads", name)
    model = ctx.catalog.models.get(c.model)
    if model is None:
        ctx.add(ns_path(*base, "model"), "not a catalog model", one_of(ctx.catalog.models), c.model)
        return None
    auto = c.autoscaling
    if auto and auto.min_replicas > auto.max_replicas:
        ctx.add(
            ns_path(*base, "autoscaling", "min_replicas"),
            f"min_replicas {auto.min_replicas} > max_replicas {auto.max_replicas}",
            f"<= {auto.max_replicas}",
            auto.min_replicas,
        )
    if auto and not (ctx.sections.observability.managed_prometheus and ctx.sections.observability.custom_metrics_adapter):
        ctx.add(
            ns_path(*base, "autoscaling"),
            "autoscaling on a server metric needs observability.managed_prometheus and observability.custom_metrics_adapter",
            "both true",
            "disabled",
        )
    if c.max_context > model.context_length:
        ctx.add(
            ns_path(*base, "max_context"),
            f"{c.model} was trained for {model.context_length} tokens",
            f"<= {model.context_length}",
            c.max_context,
        )
    scalable = ctx.catalog.metrics[c.engine].scalable
    if auto and auto.metric and auto.metric not in scalable:
        ctx.add(
            ns_path(*base, "autoscaling", "metric"),
            f"not a metric {c.engine} exports for an HPA (the latest value of a gauge, or a counter's rate)",
            one_of(scalable),
            auto.metric,
        )
    if c.engine == "jetstream-pathways":
        return _jetstream(ctx, name, base, c, model, tpu)
    return _model_server(ctx, name, base, c, model, tpu, gpu)


def _jetstream(
    ctx: CheckContext, name: str, base: tuple[str, ...], c: WorkloadConfig, model: ModelArch, tpu: dict[str, TpuPool]
) -> Workload | None:
    if c.per_device_batch_size is None:
        ctx.add(
            ns_path(*base, "per_device_batch_size"),
            "jetstream-pathways needs a batch size per chip",
            "a positive integer",
            None,
        )
        return None
    if not model.maxtext_name or not model.maxtext_tokenizer:
        ctx.add(
            ns_path(*base, "model"),
            "no MaxText config and tokenizer for this model in the catalog",
            "a model with maxtext_name and maxtext_tokenizer",
            c.model,
        )
    want = 2 if c.mode == "disaggregated" else 1
    if len(c.tpu_pools) != want:
        ctx.add(
            ns_path(*base, "tpu_pools"), f"{c.mode} serving uses {want} TPU pool(s)", f"{want} pool name(s)", list(c.tpu_pools)
        )
        return None
    pools = []
    for pool_name in c.tpu_pools:
        if pool_name not in tpu:
            if pool_name not in ctx.sections.tpu_pools:
                ctx.add(
                    ns_path(*base, "tpu_pools"),
                    f"no TPU pool named {pool_name}",
                    _pool_choices(ctx.sections.tpu_pools, "tpu_pools"),
                    pool_name,
                )
            return None
        pools.append(tpu[pool_name])
    shapes = {(p.slice.topology, p.slice.machine_type) for p in pools}
    if len(shapes) != 1:
        ctx.add(
            ns_path(*base, "tpu_pools"),
            "prefill and decode slices must have the same shape",
            "pools of one topology and machine type",
            sorted(shapes),
        )
        return None
    slice_ = pools[0].slice
    if c.mode == "disaggregated" and sizing.disaggregated_server(slice_) is None:
        shapes_text = ", ".join(f"{gen} with {chips} chips" for gen, chips in sizing.DISAGGREGATED_SERVERS)
        ctx.add(
            ns_path(*base, "tpu_pools"),
            "MaxText's disaggregated server runs prefill and decode on one slice each of fixed shapes",
            f"slices of {shapes_text}",
            f"{slice_.shape} ({slice_.chips} chips)",
        )
        return None
    fit = sizing.tpu_fit(
        model,
        slice_,
        weight_dtype=c.weight_dtype,
        kv_dtype=c.kv_cache_dtype,
        max_context=c.max_context,
        per_device_batch_size=c.per_device_batch_size,
    )
    if not fit.fits:
        smallest = sizing.smallest_tpu_slice(
            ctx.catalog,
            slice_.generation.name,
            model,
            weight_dtype=c.weight_dtype,
            kv_dtype=c.kv_cache_dtype,
            max_context=c.max_context,
            per_device_batch_size=c.per_device_batch_size,
        )
        hint = (
            f"smallest {slice_.generation.name} that fits: {smallest.topology}"
            if smallest
            else f"no {slice_.generation.name} slice fits"
        )
        ctx.add(
            ns_path(*base, "tpu_pools"),
            f"{c.model} ({c.weight_dtype} weights, {c.kv_cache_dtype} KV, {fit.sequences} x {c.max_context} tokens) "
            f"needs {fit.required_gib:.1f} GiB but a slice of tpu_pools.{pools[0].name} ({fit.shape}) provides {fit.usable_gib:.1f} GiB",
            f"a slice with >= {fit.required_gib:.1f} GiB ({hint})",
            fit.shape,
        )
        return None
    replicas, key = (
        (c.autoscaling.max_replicas, ("autoscaling", "max_replicas")) if c.autoscaling else (c.replicas, ("replicas",))
    )
    for pool in dict.fromkeys(c.tpu_pools):
        per_replica = c.tpu_pools.count(pool)
        capacity = tpu[pool].config.max_slices
        if replicas * per_replica > capacity:
            ctx.add(
                ns_path(*base, *key),
                f"{replicas} replica(s) x {per_replica} slice(s) of tpu_pools.{pool} each need {replicas * per_replica} slices, "
                f"but the pool holds {capacity}",
                f"<= {capacity // per_replica} replica(s), or more slices in tpu_pools.{pool}",
                replicas,
            )
    if c.max_prefill_length and c.max_prefill_length >= c.max_context:
        ctx.add(
            ns_path(*base, "max_prefill_length"),
            "prefill must leave room for output tokens",
            f"< max_context ({c.max_context})",
            c.max_prefill_length,
        )
    return Workload(name, c, model, fit, tpu_pools=tuple(pools))


def _model_server(
    ctx: CheckContext,
    name: str,
    base: tuple[str, ...],
    c: WorkloadConfig,
    model: ModelArch,
    tpu: dict[str, TpuPool],
    gpu: dict[str, GpuPool],
) -> Workload | None:
    """vLLM and Triton: on a GPU pool (single GPU, tensor parallel on one node, or TP x PP across nodes), or vLLM on
    one single-host TPU pool."""
    # Keys other engines read (per_device_batch_size, mode, ...) are refused in checks/applicability.py.
    for dtype_key, dtype in (("weight_dtype", c.weight_dtype), ("kv_cache_dtype", c.kv_cache_dtype)):
        if dtype in ("int8", "int4"):
            ctx.add(
                ns_path(*base, dtype_key),
                f"{c.engine} quantizes {dtype} only from a pre-quantized checkpoint, which the catalog does not describe",
                "bf16 or fp8 (vLLM quantizes fp8 on load)",
                dtype,
            )
    if c.tpu_pools:
        return _tpu_server(ctx, name, base, c, model, tpu)
    if c.gpu_pool is None:
        ctx.add(
            ns_path(*base, "gpu_pool"),
            f"{c.engine} needs a GPU pool (or, for vllm, one single-host TPU pool)",
            _pool_choices(ctx.sections.gpu_pools, "gpu_pools"),
            None,
        )
        return None
    if c.gpu_pool not in gpu:
        if c.gpu_pool not in ctx.sections.gpu_pools:
            ctx.add(
                ns_path(*base, "gpu_pool"),
                f"no GPU pool named {c.gpu_pool}",
                _pool_choices(ctx.sections.gpu_pools, "gpu_pools"),
                c.gpu_pool,
            )
        return None
    pool = gpu[c.gpu_pool]
    kwargs = gpu_fit_kwargs(c)
    fewest = sizing.smallest_gpu_count(model, pool.gpu, **kwargs)  # type: ignore[arg-type]
    count = c.gpus or fewest
    if count is None:
        fit_of(ctx, base, c, model, pool)
        return None
    fit = sizing.gpu_fit(model, pool.gpu, count, **kwargs)  # type: ignore[arg-type]
    if not fit.fits:
        fit_of(ctx, base, c, model, pool, fit=fit, fewest=fewest)
        return None
    layout = sizing.gpu_parallelism(count, pool.gpus_per_vm, c.tensor_parallel)
    if c.tensor_parallel is not None and (c.tensor_parallel > min(count, pool.gpus_per_vm) or count % c.tensor_parallel):
        ctx.add(
            ns_path(*base, "tensor_parallel"),
            f"tensor parallelism stays inside one {pool.config.machine_type} ({pool.gpus_per_vm} GPUs) and divides the replica's {count} GPUs",
            f"a divisor of {count} that is <= {min(count, pool.gpus_per_vm)}",
            c.tensor_parallel,
        )
    if not sizing.valid_tensor_parallel(model, layout.tensor_parallel):
        ctx.add(
            ns_path(*base, "tensor_parallel" if c.tensor_parallel else "gpus"),
            f"tensor-parallel size {layout.tensor_parallel} does not divide {model.q_heads} attention heads "
            f"(and {model.kv_heads} KV heads, or a multiple of them)",
            "a divisor of the heads",
            layout.tensor_parallel,
        )
    pool_nodes = pool.config.max_nodes_per_zone * len(pool.zones)
    if layout.nodes > pool_nodes and c.gpus is None:
        replica_too_big(ctx, base, c, pool, count, layout.nodes)
    elif layout.nodes > pool_nodes:
        ctx.add(
            ns_path(*base, "gpus"),
            f"one replica needs {layout.nodes} {pool.config.machine_type} node(s) but gpu_pools.{pool.name} scales to {pool_nodes}",
            f"<= {pool_nodes * pool.gpus_per_vm} GPUs, or a larger pool",
            count,
        )
    elif (needed := replica_nodes(ctx, pool, count, layout.nodes, max_replicas(c))) > pool_nodes:
        fitting = next(
            n for n in range(max_replicas(c), -1, -1) if replica_nodes(ctx, pool, count, layout.nodes, n) <= pool_nodes
        )
        ctx.add(
            ns_path(*base, *_replicas_key(c)),
            f"{max_replicas(c)} replica(s) of {count} GPU(s) need {needed} {pool.config.machine_type} node(s), "
            f"but gpu_pools.{pool.name} scales to {pool_nodes}",
            f"<= {fitting} replica(s), or a larger pool",
            max_replicas(c),
        )
    if c.model_loading == "hyperdisk-ml" and len(pool.zones) > 1:
        ctx.add(
            ns_path(*base, "model_loading"),
            f"a Hyperdisk ML volume is zonal but gpu_pools.{pool.name} spans {len(pool.zones)} zones",
            "gcsfuse, or a pool in one zone",
            c.model_loading,
        )
    if c.batch and layout.nodes > 1:
        ctx.add(
            ns_path(*base, "batch"),
            f"a batch pod runs on one node; {count} GPUs span {layout.nodes} {pool.config.machine_type} nodes",
            f"<= {pool.gpus_per_vm} GPUs (fewer max_num_seqs or a shorter max_context), or a larger machine type",
            count,
        )
    if count > pool.gpus_per_vm and count % pool.gpus_per_vm:
        ctx.add(
            ns_path(*base, "gpus"),
            f"a multi-node replica uses whole {pool.config.machine_type} nodes ({pool.gpus_per_vm} GPUs)",
            f"a multiple of {pool.gpus_per_vm}",
            count,
        )
    return Workload(name, c, model, fit, gpu_pool=pool, gpus=count)


def replica_nodes(ctx: CheckContext, pool: GpuPool, gpus: int, nodes_per_replica: int, replicas: int) -> int:
    """Nodes of the pool that `replicas` replicas take: pods of a replica smaller than a node share nodes, as the
    scheduler packs them (GPUs, and CPU/memory in proportion: sizing.gpu_pod)."""
    machine = ctx.catalog.machines[pool.config.machine_type]
    pod = sizing.gpu_pod(machine, gpus, pool.gpus_per_vm)
    node = sizing.Pod(pool.gpus_per_vm, sizing.schedulable(machine))
    return sizing.nodes_for([pod] * (replicas * nodes_per_replica), node) or replicas * nodes_per_replica


def max_replicas(c: WorkloadConfig) -> int:
    """Replicas at full scale: the HPA's ceiling, a batch Job's parallelism, or the fixed count."""
    if c.autoscaling:
        return c.autoscaling.max_replicas
    return c.batch.parallelism if c.batch else c.replicas


def _replicas_key(c: WorkloadConfig) -> tuple[str, ...]:
    if c.autoscaling:
        return ("autoscaling", "max_replicas")
    return ("batch", "parallelism") if c.batch else ("replicas",)


def _tpu_server(
    ctx: CheckContext, name: str, base: tuple[str, ...], c: WorkloadConfig, model: ModelArch, tpu: dict[str, TpuPool]
) -> Workload | None:
    """vLLM on TPU: one single-host slice per replica, tensor parallel over its chips."""
    if c.engine != "vllm" or c.gpu_pool or c.gpus:
        return None  # tpu_pools on triton, GPU keys on TPU: refused in checks/applicability.py
    if len(c.tpu_pools) != 1:
        ctx.add(
            ns_path(*base, "tpu_pools"),
            "on TPU, vllm serves from exactly one single-host pool",
            "one tpu_pools entry",
            list(c.tpu_pools),
        )
        return None
    pool = tpu.get(c.tpu_pools[0])
    if pool is None:
        if c.tpu_pools[0] not in ctx.sections.tpu_pools:
            ctx.add(
                ns_path(*base, "tpu_pools"),
                f"no TPU pool named {c.tpu_pools[0]}",
                _pool_choices(ctx.sections.tpu_pools, "tpu_pools"),
                c.tpu_pools[0],
            )
        return None
    slice_ = pool.slice
    if slice_.multi_host:
        ctx.add(
            ns_path(*base, "tpu_pools"),
            f"vLLM serves a replica from one TPU VM; {slice_.topology} spans {slice_.vms} VMs",
            "a single-host slice",
            c.tpu_pools[0],
        )
        return None
    fit = sizing.tpu_server_fit(model, slice_, **server_fit_kwargs(c))  # type: ignore[arg-type]
    if not fit.fits:
        tpu_server_fit_of(ctx, base, c, model, pool, fit)
        return None
    if not sizing.valid_tensor_parallel(model, slice_.chips):
        ctx.add(
            ns_path(*base, "tpu_pools"),
            f"tensor-parallel size {slice_.chips} (the slice's chips) does not divide {model.q_heads} attention heads",
            "a slice whose chips divide the heads",
            fit.shape,
        )
    if max_replicas(c) > pool.config.max_slices:
        ctx.add(
            ns_path(*base, *_replicas_key(c)),
            f"{max_replicas(c)} replica(s) need as many slices but tpu_pools.{pool.name} holds {pool.config.max_slices}",
            f"<= {pool.config.max_slices}",
            max_replicas(c),
        )
    return Workload(name, c, model, fit, tpu_pools=(pool,))


def check_pathways_pools(ctx: CheckContext, workloads: dict[str, Workload]) -> None:
    """A TPU pool a jetstream-pathways workload runs on serves Pathways only.

    Those pools run with Workload Identity Federation off (GCE_METADATA, GKE's tutorial for Pathways with JetStream),
    so every pod on them acts as the Pathways node account; a vLLM server there could not use its own Kubernetes
    account (its weights through GCS FUSE, a batch Job's results folder) and would act as the Pathways account.
    """
    pathways = {p.name: n for n, w in workloads.items() if w.config.engine == "jetstream-pathways" for p in w.tpu_pools}
    for name, w in workloads.items():
        if w.config.engine == "jetstream-pathways":
            continue
        for pool in w.tpu_pools:
            if pool.name in pathways:
                ctx.add(
                    ns_path("workloads", name, "tpu_pools"),
                    f"tpu_pools.{pool.name} serves jetstream-pathways workload {pathways[pool.name]}: its nodes run with "
                    f"Workload Identity off as the Pathways node account, and {w.config.engine} needs its own Kubernetes "
                    "account's Workload Identity",
                    "a TPU pool no jetstream-pathways workload uses",
                    pool.name,
                )
