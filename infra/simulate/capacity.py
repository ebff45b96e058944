"""What one replica can do per unit of time: a roofline of its accelerators, scaled by fitted efficiencies.

One engine step serves one token to each running sequence plus, where the engine chunks prefills (vLLM's
`max_num_batched_tokens`), a slice of waiting prompts. It lasts

    max(bytes read / (HBM bandwidth x bandwidth efficiency), FLOPs / (peak x MFU), sequences x host time)
      + step overhead + collectives

The host term is the server's own work per running sequence (scheduling, sampling, detokenizing, streaming): it
overlaps the accelerator's, and bounds the step once a small model on a fast accelerator outruns it. Bytes are the
weights once plus the KV cache the step attends over; FLOPs are 2 x params per token plus attention
over the context. With tensor parallelism each layer all-reduces its activations twice (after attention, after the
MLP): a ring over n chips moves 2(n-1)/n x the activations over the catalog's interconnect, plus a fixed latency per
all-reduce. Pipeline stages run one after another within a step, so a step streams at one stage's bandwidth; vLLM's
overlap of micro-batches across stages is not credited (the safe side).

The factors (bandwidth efficiency, MFU, host time per sequence, step overhead, all-reduce latency) are per engine in throughput.yaml, fitted to
published benchmarks (infra.simulate.fit), or per accelerator in calibrated.yaml after `simulate --calibrate`.

Concurrency is bounded twice: by the server's setting (vLLM max_num_seqs, JetStream per_device_batch_size x chips),
and by the KV cache the memory fit leaves once weights and the engine's reserve are placed.

JetStream keeps a static cache: every step attends over every slot's full cache length, running or not. Interleaved
it runs prefills between decode steps, stalling them; disaggregated it prefills on its own slice, so decode steps
never wait, and the prefill slice caps the request rate.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

from infra import sizing
from infra.catalog import Catalog, Factors, GpuType, TpuGeneration
from infra.config import Workload

GB = 1e9
TERA = 1e12
LOW_PRECISION = frozenset({"int8", "fp8"})
"""Weight dtypes whose matmuls run at the low-precision peak; int4 is weight-only (dequantized to bf16)."""
DEFAULT_PER_DEVICE_BATCH_SIZE = 1
"""The JetStream batch size infra.serving.composition renders when a workload sets none."""
ALLREDUCES_PER_LAYER = 2
"""Megatron-style tensor parallelism all-reduces after attention and after the MLP of every layer."""
ACTIVATION_BYTES = 2
"""Activations travel in bf16."""


@dataclass(frozen=True)
class ReplicaCapacity:
    weight_bytes: float
    kv_bytes_per_token: float
    hbm_bandwidth_Bps: float
    """Of the chips one step streams through at once: a pipeline stage's tensor-parallel group."""
    peak_flops: float
    """FLOP/s of the same chips at the weight dtype (int8/fp8: the low-precision peak)."""
    decode_efficiency: float
    prefill_mfu: float
    params: float
    max_concurrency: int
    """Sequences the server batches at once: vLLM/Triton max_num_seqs, JetStream per_device_batch_size x chips."""
    kv_capacity_tokens: int
    """KV-cache tokens the memory fit leaves after weights and the engine's reserve."""
    max_batched_tokens: int | None = None
    """Tokens per step, decode plus prefill chunk (vLLM max_num_batched_tokens); None: prefills run apart."""
    disaggregated: bool = False
    """Prefill on its own slice (JetStream disaggregated), so it never stalls decode steps."""
    host_s_per_sequence: float = 0.0
    step_overhead_s: float = 0.0
    collective_fixed_s: float = 0.0
    """Fixed latency of one step's all-reduces (0 without tensor parallelism)."""
    collective_s_per_token: float = 0.0
    """Transfer time of one token's activations through one step's all-reduces."""
    attention_flops_per_context_token: float = 0.0
    """FLOPs one query token spends per token of context it attends over (4 x layers x q_heads x head_dim)."""
    static_cache_tokens: int | None = None
    """JetStream: every slot's cache length, attended over whole every step."""

    def stepper(self) -> Callable[[float, float, float], float]:
        """:meth:`step_s` as one flat closure over the replica's constants: the engine takes millions of steps a day,
        and a method call through the dataclass's attributes costs it about a third of its time."""
        weight, kv_per_token, attention_per_token, twice_params = (
            self.weight_bytes,
            self.kv_bytes_per_token,
            self.attention_flops_per_context_token,
            2 * self.params,
        )
        bandwidth, compute, host = (
            self.hbm_bandwidth_Bps * self.decode_efficiency,
            self.peak_flops * self.prefill_mfu,
            self.host_s_per_sequence,
        )
        overhead, fixed, per_token = self.step_overhead_s, self.collective_fixed_s, self.collective_s_per_token
        static, slots = self.static_cache_tokens, self.max_concurrency

        def step(decode_tokens: float, attended_tokens: float, prefill_tokens: float) -> float:
            if static is not None and decode_tokens > 0:
                decode_tokens, attended_tokens = slots, slots * static
            tokens = decode_tokens + prefill_tokens
            if tokens <= 0:
                return 0.0
            attended = attended_tokens + prefill_tokens
            read = weight + kv_per_token * attended
            flops = twice_params * tokens + attention_per_token * (attended_tokens + prefill_tokens**2 / 2)
            roofline = read / bandwidth
            if flops / compute > roofline:
                roofline = flops / compute
            if decode_tokens * host > roofline:
                roofline = decode_tokens * host
            return roofline + overhead + fixed + per_token * tokens

        return step

    def step_s(self, decode_batch: float, context_tokens_total: float, prefill_tokens: float = 0) -> float:
        """One engine step: a token for each of `decode_batch` running sequences whose contexts sum to
        `context_tokens_total`, plus `prefill_tokens` prompt tokens chunked into it (one prompt from its start).
        A static cache (JetStream) computes and reads every slot, whatever runs."""
        return self.stepper()(decode_batch, context_tokens_total, prefill_tokens)

    def decode_step_s(self, batch: float, context_tokens_total: float) -> float:
        return self.step_s(batch, context_tokens_total, 0)

    def prefill_s(self, prompt_tokens: float) -> float:
        """One prompt prefilled alone."""
        return self.step_s(0, 0, prompt_tokens)

    def concurrency_for(self, context_tokens: float) -> int:
        """Sequences of `context_tokens` each the server runs at once: its setting, or fewer if the KV cache is full."""
        return max(1, min(self.max_concurrency, int(self.kv_capacity_tokens // max(1.0, context_tokens))))

    def decode_tokens_per_s(self, context_tokens: float) -> float:
        """Output tokens/s at full batch, every sequence holding `context_tokens` of context."""
        batch = self.concurrency_for(context_tokens)
        return batch / self.decode_step_s(batch, batch * context_tokens)


@dataclass(frozen=True)
class ServingPoint:
    output_tokens_per_s: float
    ttft_s: float
    tpot_s: float


def serving_point(capacity: ReplicaCapacity, concurrency: int, prompt_tokens: int, output_tokens: int) -> ServingPoint:
    """Steady state of a closed-loop benchmark: `concurrency` clients, each sending its next request (`prompt_tokens`
    in, `output_tokens` out) when the last one finished, as vllm bench serve --max-concurrency and inference-perf's
    concurrency stages do.

    Each step finishes concurrency / output_tokens requests, whose replacements bring that many prompts: chunked into
    the steps (vLLM, up to max_batched_tokens a step), run between them (JetStream interleaved), or on the prefill
    slice (disaggregated, which caps the rate at one prompt per prefill). A sequence's own prompt is its TTFT; while it
    decodes, only the other clients' replacements ride in its steps, (concurrency - 1) of every concurrency prompts:
    alone (concurrency 1) it decodes with no prefill at all, as vLLM's single-request ITL shows (flat in the prompt
    length but for the KV read). Throughput is Little's law over the request time, TTFT + (output - 1) x TPOT.

    Past vLLM's budget (prompts arrive faster than the budget left after the decodes can prefill them), vLLM still
    schedules every running decode first in each step, so decodes do not slow down: only as many sequences decode as
    the budget can keep fed (budget x output / (prompt + output)), each a token a step, and the others wait in prefill,
    which lengthens TTFT (Little's law) rather than TPOT."""
    cap, p, o = capacity, prompt_tokens, output_tokens
    c = min(concurrency, cap.concurrency_for(p + o))
    context = c * (p + o / 2)
    budget = cap.max_batched_tokens
    if budget is not None:
        prefill = (c - 1) * p / o
        if c + prefill <= budget:
            tpot = cap.step_s(c, context, prefill)
            chunk = max(1, budget - c)
            ttft = math.ceil(p / chunk) * cap.step_s(c, context, min(p, chunk))
        else:
            decode = budget * o / (p + o)
            tpot = cap.step_s(decode, context * decode / c, budget - decode)
            ttft = (c * o / decode - (o - 1)) * tpot
    elif cap.disaggregated:
        tpot, ttft = cap.decode_step_s(c, context), cap.prefill_s(p)
    else:
        tpot = cap.decode_step_s(c, context) + (c - 1) / o * cap.prefill_s(p)
        ttft = cap.prefill_s(p) + cap.decode_step_s(c, context)
    rate = c * o / (ttft + (o - 1) * tpot)
    if cap.disaggregated:
        rate = min(rate, o / cap.prefill_s(p))
    return ServingPoint(output_tokens_per_s=rate, ttft_s=ttft, tpot_s=tpot)


def _chip(catalog: Catalog, accelerator: str) -> TpuGeneration | GpuType:
    return catalog.tpus[accelerator] if accelerator in catalog.tpus else catalog.gpus[accelerator]


def default_max_batched_tokens(catalog: Catalog, engine: str, accelerator: str) -> int | None:
    """vLLM's default step budget for its OpenAI server on the accelerator (the pinned release's defaults, in
    throughput.yaml); None for JetStream, which prefills apart from decode steps."""
    if engine == "jetstream-pathways":
        return None
    table = catalog.throughput.vllm_max_num_batched_tokens
    chip = _chip(catalog, accelerator)
    return table.tpu[accelerator] if isinstance(chip, TpuGeneration) else table.for_gpu(chip)


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
    tensor_parallel: int | None = None,
    max_batched_tokens: int | None = None,
    static_cache_tokens: int | None = None,
    disaggregated: bool = False,
    memory_fit: sizing.MemoryFit | None = None,
    factors: Factors | None = None,
) -> ReplicaCapacity:
    """A replica of `model` on `devices` chips or GPUs of the catalog `accelerator` (tensor parallel over
    `tensor_parallel` of them, default all; the rest pipeline stages), with the engine's factors for the accelerator.

    `memory_fit` is the workload's fit (its KV room); without one, the devices' memory under the engine's profile.
    vLLM's step budget defaults to its own default for the accelerator; JetStream (a static cache) has none."""
    arch = catalog.models[model]
    f = factors or catalog.throughput.factors(engine, accelerator)
    chip = _chip(catalog, accelerator)
    tp = tensor_parallel or devices
    if isinstance(chip, TpuGeneration):
        bandwidth, memory_gb, link = chip.hbm_bandwidth_gbps, chip.hbm_gb_per_chip, chip.ici_gbps
    else:
        bandwidth, memory_gb, link = chip.bandwidth_gbps, chip.memory_gb, chip.interconnect_gbps
    peak = chip.peak_int8_tops if weight_dtype in LOW_PRECISION else chip.peak_bf16_tflops
    fit = memory_fit or sizing.memory_fit(
        model=arch,
        weight_dtype=weight_dtype,
        kv_dtype=kv_dtype,
        max_context=0,
        sequences=0,
        devices=devices,
        device_memory_gb=memory_gb,
        engine=sizing.ENGINES[engine],
        shape=f"{devices}x {accelerator}",
    )
    kv_per_token = sizing.kv_bytes_per_token(arch, kv_dtype)
    allreduces = ALLREDUCES_PER_LAYER * arch.layers if tp > 1 else 0
    ring = 2 * (tp - 1) / tp
    if max_batched_tokens is None and static_cache_tokens is None:
        max_batched_tokens = default_max_batched_tokens(catalog, engine, accelerator)
    return ReplicaCapacity(
        weight_bytes=sizing.weight_bytes(arch, weight_dtype),
        kv_bytes_per_token=kv_per_token,
        hbm_bandwidth_Bps=tp * bandwidth * GB,
        peak_flops=tp * peak * TERA,
        decode_efficiency=f.decode_bandwidth_efficiency,
        prefill_mfu=f.prefill_mfu,
        params=arch.params_b * 1e9,
        max_concurrency=max_concurrency,
        kv_capacity_tokens=int(max(0.0, fit.usable_bytes - fit.weights_bytes - fit.reserve_bytes) // kv_per_token),
        max_batched_tokens=max_batched_tokens,
        disaggregated=disaggregated,
        host_s_per_sequence=f.host_us_per_sequence / 1e6,
        step_overhead_s=f.step_overhead_ms / 1e3,
        collective_fixed_s=allreduces * f.allreduce_latency_us / 1e6,
        collective_s_per_token=allreduces * ring * arch.hidden * ACTIVATION_BYTES / (link * GB),
        attention_flops_per_context_token=4 * arch.layers * arch.q_heads * arch.head_dim,
        static_cache_tokens=static_cache_tokens,
    )


def replica_capacity(catalog: Catalog, workload: Workload, *, factors: Factors | None = None) -> ReplicaCapacity:
    """Capacity of one replica of a resolved workload: the GPUs of one vLLM/Triton replica, the chips of the slice vLLM
    on TPU serves from, the chips of one JetStream slice (disaggregated: of each of its two slices, one shape).
    `factors` replace the catalog's (calibration tries them)."""
    c = workload.config
    common = dict(engine=c.engine, model=c.model, weight_dtype=c.weight_dtype, kv_dtype=c.kv_cache_dtype, factors=factors)
    if workload.gpu_pool is not None:
        layout = sizing.gpu_parallelism(workload.gpus, workload.gpu_pool.gpus_per_vm, c.tensor_parallel)
        return capacity_of(
            catalog,
            **common,  # type: ignore[arg-type]
            accelerator=workload.gpu_pool.gpu.name,
            devices=workload.gpus,
            tensor_parallel=layout.tensor_parallel,
            max_concurrency=c.sequences,
            memory_fit=workload.fit,
        )
    slice_ = workload.tpu_pools[0].slice
    jetstream = c.engine == "jetstream-pathways"
    return capacity_of(
        catalog,
        **common,  # type: ignore[arg-type]
        accelerator=slice_.generation.name,
        devices=slice_.chips,
        max_concurrency=(c.per_device_batch_size or DEFAULT_PER_DEVICE_BATCH_SIZE) * slice_.chips if jetstream else c.sequences,
        static_cache_tokens=c.max_context if jetstream else None,
        disaggregated=c.mode == "disaggregated",
        memory_fit=workload.fit,
    )
