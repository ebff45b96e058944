"""Pure functions that derive every number the stack uses from the catalog.

Memory model (sizing-prices.md §3):
  required = weights x (1 + quantization scales) + KV cache + runtime reserve
  weights  = params x bytes(weight dtype)
  KV cache = sequences x max context x 2 x layers x kv_heads x head_dim x bytes(kv dtype)
The KV term uses the full context on every layer (sliding-window layers included): the safe upper
bound, since not every engine caps local-attention layers at their window.
Usable memory is HBM x the engine's usable fraction (vLLM gpu_memory_utilization, 1.0 for JetStream).
Capacity is counted in bytes from the catalog's decimal GB (the conservative reading of "32 GB").
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

from infra.catalog import Catalog, GpuType, ModelArch, Provisioning, TpuSlice

Dtype = Literal["bf16", "fp8", "int8", "int4"]
Engine = Literal["jetstream-pathways", "vllm", "triton"]

BYTES_PER_PARAM: dict[str, float] = {"bf16": 2.0, "fp8": 1.0, "int8": 1.0, "int4": 0.5}
QUANT_SCALE_OVERHEAD = 0.01
"""Quantization scales add about 1-2 % to quantized weights (sizing-prices §3.1); 1 % is used."""
GB = 1e9
GIB = 2**30
HOURS_PER_MONTH = 730


@dataclass(frozen=True)
class EngineProfile:
    """How an engine spends accelerator memory."""

    usable_fraction: float
    """Share of HBM the engine allocates (vLLM's gpu_memory_utilization default is 0.90)."""
    reserve_gb_per_device: float
    """Activations, CUDA graphs and workspace held outside weights and KV (1-3 GB typical on GPU)."""


ENGINES: dict[str, EngineProfile] = {
    "jetstream-pathways": EngineProfile(usable_fraction=1.0, reserve_gb_per_device=0.0),
    "vllm": EngineProfile(usable_fraction=0.90, reserve_gb_per_device=2.0),
    "triton": EngineProfile(usable_fraction=0.90, reserve_gb_per_device=2.0),
}


def weight_bytes(model: ModelArch, dtype: Dtype) -> float:
    scales = 0.0 if dtype == "bf16" else QUANT_SCALE_OVERHEAD
    return model.params_b * 1e9 * BYTES_PER_PARAM[dtype] * (1 + scales)


def kv_bytes_per_token(model: ModelArch, kv_dtype: Dtype) -> float:
    return 2 * model.layers * model.kv_heads * model.head_dim * BYTES_PER_PARAM[kv_dtype]


def params_from_dims(model: ModelArch) -> float:
    """Parameter count recomputed from the architecture (checks the catalog's published figure)."""
    q = model.q_heads * model.head_dim
    kv = model.kv_heads * model.head_dim
    attention = model.hidden * q * 2 + model.hidden * kv * 2
    mlp = 3 * model.hidden * model.mlp * model.experts
    router = model.hidden * model.experts if model.experts > 1 else 0
    embeddings = model.vocab * model.hidden * (1 if model.tied_embeddings else 2)
    return model.layers * (attention + mlp + router) + embeddings


@dataclass(frozen=True)
class MemoryFit:
    """Required versus provisioned accelerator memory for one model replica (or one slice)."""

    shape: str
    devices: int
    sequences: int
    weights_bytes: float
    kv_bytes: float
    reserve_bytes: float
    provisioned_bytes: float
    usable_bytes: float

    @property
    def required_bytes(self) -> float:
        return self.weights_bytes + self.kv_bytes + self.reserve_bytes

    @property
    def fits(self) -> bool:
        return self.required_bytes <= self.usable_bytes

    @property
    def ratio(self) -> float:
        """Provisioned / required memory: 1.0 is a perfect fit, below it does not fit."""
        return self.provisioned_bytes / self.required_bytes

    @property
    def required_gib(self) -> float:
        return self.required_bytes / GIB

    @property
    def usable_gib(self) -> float:
        return self.usable_bytes / GIB


def memory_fit(
    *,
    model: ModelArch,
    weight_dtype: Dtype,
    kv_dtype: Dtype,
    max_context: int,
    sequences: int,
    devices: int,
    device_memory_gb: float,
    engine: EngineProfile,
    shape: str,
) -> MemoryFit:
    provisioned = devices * device_memory_gb * GB
    return MemoryFit(
        shape=shape,
        devices=devices,
        sequences=sequences,
        weights_bytes=weight_bytes(model, weight_dtype),
        kv_bytes=sequences * max_context * kv_bytes_per_token(model, kv_dtype),
        reserve_bytes=devices * engine.reserve_gb_per_device * GB,
        provisioned_bytes=provisioned,
        usable_bytes=provisioned * engine.usable_fraction,
    )


def tpu_fit(
    model: ModelArch,
    slice_: TpuSlice,
    *,
    weight_dtype: Dtype,
    kv_dtype: Dtype,
    max_context: int,
    per_device_batch_size: int,
) -> MemoryFit:
    """Fit of one JetStream model copy on one slice; it serves per_device_batch_size x chips sequences."""
    return memory_fit(
        model=model,
        weight_dtype=weight_dtype,
        kv_dtype=kv_dtype,
        max_context=max_context,
        sequences=per_device_batch_size * slice_.chips,
        devices=slice_.chips,
        device_memory_gb=slice_.generation.hbm_gb_per_chip,
        engine=ENGINES["jetstream-pathways"],
        shape=f"{slice_.generation.name} {slice_.topology}",
    )


def smallest_tpu_slice(
    catalog: Catalog,
    generation: str,
    model: ModelArch,
    *,
    weight_dtype: Dtype,
    kv_dtype: Dtype,
    max_context: int,
    per_device_batch_size: int,
) -> TpuSlice | None:
    """The smallest shape of the generation (fewest chips, then fewest VMs) that holds the model."""
    for slice_ in catalog.tpu_slices(generation):
        fit = tpu_fit(
            model,
            slice_,
            weight_dtype=weight_dtype,
            kv_dtype=kv_dtype,
            max_context=max_context,
            per_device_batch_size=per_device_batch_size,
        )
        if fit.fits:
            return slice_
    return None


def gpu_fit(
    model: ModelArch,
    gpu: GpuType,
    gpus: int,
    *,
    engine: Engine,
    weight_dtype: Dtype,
    kv_dtype: Dtype,
    max_context: int,
    max_num_seqs: int,
    gpu_memory_utilization: float | None = None,
) -> MemoryFit:
    profile = ENGINES[engine]
    if gpu_memory_utilization is not None:
        profile = EngineProfile(gpu_memory_utilization, profile.reserve_gb_per_device)
    return memory_fit(
        model=model,
        weight_dtype=weight_dtype,
        kv_dtype=kv_dtype,
        max_context=max_context,
        sequences=max_num_seqs,
        devices=gpus,
        device_memory_gb=gpu.memory_gb,
        engine=profile,
        shape=f"{gpus}x {gpu.name}",
    )


def valid_tensor_parallel(model: ModelArch, tp: int) -> bool:
    """vLLM shards attention heads: TP must divide the query heads."""
    return tp >= 1 and model.q_heads % tp == 0


def smallest_gpu_count(
    model: ModelArch,
    gpu: GpuType,
    *,
    engine: Engine,
    weight_dtype: Dtype,
    kv_dtype: Dtype,
    max_context: int,
    max_num_seqs: int,
    limit: int = 64,
) -> int | None:
    """Fewest GPUs (a power of two that is a valid tensor-parallel size) that hold one replica."""
    count = 1
    while count <= limit:
        fit = gpu_fit(
            model,
            gpu,
            count,
            engine=engine,
            weight_dtype=weight_dtype,
            kv_dtype=kv_dtype,
            max_context=max_context,
            max_num_seqs=max_num_seqs,
        )
        if fit.fits and valid_tensor_parallel(model, count):
            return count
        count *= 2
    return None


@dataclass(frozen=True)
class GpuParallelism:
    """vLLM's layout for a replica spanning `gpus` GPUs on VMs with `gpus_per_vm` each."""

    tensor_parallel: int
    pipeline_parallel: int
    nodes: int


def gpu_parallelism(gpus: int, gpus_per_vm: int) -> GpuParallelism:
    """One node: TP = GPUs. Across nodes: TP = GPUs per node, PP = nodes (vLLM distributed docs)."""
    if gpus <= gpus_per_vm:
        return GpuParallelism(tensor_parallel=gpus, pipeline_parallel=1, nodes=1)
    nodes = math.ceil(gpus / gpus_per_vm)
    return GpuParallelism(tensor_parallel=gpus_per_vm, pipeline_parallel=nodes, nodes=nodes)


def lws_group_size(slice_: TpuSlice, slices: int = 1, *, pathways_leader: bool = True) -> int:
    """LeaderWorkerSet size: one worker pod per VM of every slice, plus the Pathways leader pod."""
    return slices * slice_.vms + (1 if pathways_leader else 0)


@dataclass(frozen=True)
class PathwaysFlags:
    instance_type: str
    instance_count: int


def pathways_flags(slice_: TpuSlice, slices: int = 1) -> PathwaysFlags:
    return PathwaysFlags(f"{slice_.generation.pathways_type}:{slice_.topology}", slices)


@dataclass(frozen=True)
class MaxTextParallelism:
    """MaxText ICI mesh axes; their product must equal the chips of one slice."""

    fsdp: int
    autoregressive: int
    tensor: int

    @property
    def product(self) -> int:
        return self.fsdp * self.autoregressive * self.tensor


MAX_TENSOR_PARALLEL_CHIPS = 8
"""Seed 001 shards 405B with tensor 8 x autoregressive 2 on 16 chips: TP stays within 8 chips."""


def maxtext_parallelism(model: ModelArch, chips: int) -> MaxTextParallelism:
    """Tensor parallelism up to 8 chips (dividing the heads); the rest goes to autoregressive."""
    tensor = max(t for t in range(1, min(chips, MAX_TENSOR_PARALLEL_CHIPS) + 1) if chips % t == 0 and model.q_heads % t == 0)
    return MaxTextParallelism(fsdp=1, autoregressive=chips // tensor, tensor=tensor)


def tpu_pool_hourly(catalog: Catalog, slice_: TpuSlice, region: str, provisioning: Provisioning, slices: int) -> float | None:
    row = catalog.tpu_chip_price(slice_.generation.name, region)
    return None if row is None else row.hourly(provisioning) * slice_.chips * slices


def machine_pool_hourly(catalog: Catalog, machine_type: str, region: str, provisioning: Provisioning, nodes: int) -> float | None:
    row = catalog.machine_price(machine_type, region)
    return None if row is None else row.hourly(provisioning) * nodes
