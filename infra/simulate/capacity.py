"""What one replica can do per unit of time: the roofline of its accelerators, scaled by fitted efficiencies.

Decode is memory-bound: every step streams all weights once plus the KV cache of the running sequences, so
a step lasts bytes read / (HBM bandwidth x decode efficiency). Prefill is compute-bound: 2 x params FLOPs per
prompt token at the weight dtype's peak x MFU (attention FLOPs left out, as in the MFU the factor was fitted
with). Both factors are per engine in the catalog's throughput.yaml, each next to the published figure it was
fitted to and the model's error against it.

Resources of one replica: the GPUs of one vLLM/Triton replica, the chips of the one slice vLLM on TPU serves
from, and the chips of one JetStream slice. Disaggregated JetStream runs prefill on one slice and decode on the
other; the loader requires both to have one shape, so one slice's bandwidth and FLOP/s stand for each phase.
The simulator charges both phases to one timeline, which understates a disaggregated replica: the safe side.
"""

from __future__ import annotations

from dataclasses import dataclass

from infra import sizing
from infra.catalog import Catalog, GpuType, TpuGeneration
from infra.config import Workload

GB = 1e9
TERA = 1e12
LOW_PRECISION = frozenset({"int8", "fp8"})
"""Weight dtypes whose matmuls run at the low-precision peak; int4 is weight-only (dequantized to bf16)."""
DEFAULT_PER_DEVICE_BATCH_SIZE = 1
"""The JetStream batch size infra.serving.composition renders when a workload sets none."""


@dataclass(frozen=True)
class ReplicaCapacity:
    weight_bytes: float
    kv_bytes_per_token: float
    hbm_bandwidth_Bps: float
    """Summed over every chip or GPU of the replica: tensor parallelism streams the shards in parallel."""
    peak_flops: float
    """FLOP/s of the replica at the weight dtype (int8/fp8: the low-precision peak)."""
    decode_efficiency: float
    prefill_mfu: float
    params: float
    max_concurrency: int
    """Sequences the server batches at once: vLLM/Triton max_num_seqs, JetStream per_device_batch_size x chips."""

    def decode_step_s(self, batch: int, context_tokens_total: int) -> float:
        """One token for each of `batch` running sequences whose contexts sum to `context_tokens_total`.

        `batch` does not enter the bytes: the KV read is already counted by the total context."""
        read = self.weight_bytes + self.kv_bytes_per_token * context_tokens_total
        return read / (self.hbm_bandwidth_Bps * self.decode_efficiency)

    def decode_tokens_per_s(self, context_tokens: int) -> float:
        """Output tokens/s at full batch, every sequence holding `context_tokens` of context."""
        batch = self.max_concurrency
        return batch / self.decode_step_s(batch, batch * context_tokens)

    def prefill_s(self, prompt_tokens: int) -> float:
        return 2 * self.params * prompt_tokens / (self.peak_flops * self.prefill_mfu)

    # --- placeholder of the engine contract (issue #19 part B); helper A's capacity model replaces this hunk ---------
    max_batched_tokens: int | None = None
    """vLLM's max_num_batched_tokens: decode tokens + prefill chunk per step; None: prefill apart, before decode."""
    kv_capacity_tokens: int | None = None
    """KV-cache tokens the memory fit leaves; None: unbounded."""
    disaggregated: bool = False
    """JetStream disaggregated: prefill on its own slice, beside the decode steps."""

    def step_s(self, decode_batch: int, context_tokens_total: int, prefill_tokens: int = 0) -> float:
        """One engine step: a token for each running sequence plus `prefill_tokens` prompt tokens chunked into it."""
        return self.decode_step_s(decode_batch, context_tokens_total) + self.prefill_s(prefill_tokens)

    # --- end of placeholder ---------------------------------------------------------------------------------------


def capacity_of(
    catalog: Catalog,
    *,
    engine: str,
    model: str,
    accelerator: str,
    devices: int,
    weight_dtype: sizing.Dtype,
    kv_dtype: sizing.Dtype,
    max_concurrency: int,
) -> ReplicaCapacity:
    """A replica of `model` on `devices` chips or GPUs of the catalog `accelerator`, with the engine's fitted factors."""
    arch = catalog.models[model]
    factors = catalog.throughput.engines[engine]
    chip: TpuGeneration | GpuType = catalog.tpus[accelerator] if accelerator in catalog.tpus else catalog.gpus[accelerator]
    bandwidth = chip.hbm_bandwidth_gbps if isinstance(chip, TpuGeneration) else chip.bandwidth_gbps
    peak = chip.peak_int8_tops if weight_dtype in LOW_PRECISION else chip.peak_bf16_tflops
    return ReplicaCapacity(
        weight_bytes=sizing.weight_bytes(arch, weight_dtype),
        kv_bytes_per_token=sizing.kv_bytes_per_token(arch, kv_dtype),
        hbm_bandwidth_Bps=devices * bandwidth * GB,
        peak_flops=devices * peak * TERA,
        decode_efficiency=factors.decode_bandwidth_efficiency,
        prefill_mfu=factors.prefill_mfu,
        params=arch.params_b * 1e9,
        max_concurrency=max_concurrency,
    )


def replica_capacity(catalog: Catalog, workload: Workload) -> ReplicaCapacity:
    """Capacity of one replica of a resolved workload (see the module docstring for what one replica holds)."""
    c = workload.config
    if workload.gpu_pool is not None:
        accelerator, devices = workload.gpu_pool.gpu.name, workload.gpus
        concurrency = c.sequences
    else:
        slice_ = workload.tpu_pools[0].slice
        accelerator, devices = slice_.generation.name, slice_.chips
        if c.engine == "jetstream-pathways":
            concurrency = (c.per_device_batch_size or DEFAULT_PER_DEVICE_BATCH_SIZE) * slice_.chips
        else:
            concurrency = c.sequences
    return capacity_of(
        catalog,
        engine=c.engine,
        model=c.model,
        accelerator=accelerator,
        devices=devices,
        weight_dtype=c.weight_dtype,
        kv_dtype=c.kv_cache_dtype,
        max_concurrency=concurrency,
    )
