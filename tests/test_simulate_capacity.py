"""The capacity model behaves as a roofline with a host ceiling, collectives, chunked prefill and a KV bound do."""

from __future__ import annotations

import dataclasses
import math

import pytest
from conftest import ENVIRONMENTS
from test_platform import load_stack

from infra.catalog import Catalog, Dtype, GpuType, TpuGeneration
from infra.simulate.capacity import ReplicaCapacity, capacity_of, default_max_batched_tokens, replica_capacity, serving_point


def bare(cap: ReplicaCapacity) -> ReplicaCapacity:
    """Only the roofline: no host ceiling, overhead or collectives."""
    return dataclasses.replace(
        cap, host_s_per_sequence=0.0, step_overhead_s=0.0, collective_fixed_s=0.0, collective_s_per_token=0.0
    )


def replica(
    catalog: Catalog, model: str = "llama-3.1-8b", accelerator: str = "h100-80gb", devices: int = 1, **kw: object
) -> ReplicaCapacity:
    args: dict = dict(engine="vllm", weight_dtype="bf16", kv_dtype="bf16", max_concurrency=64) | kw
    return capacity_of(catalog, model=model, accelerator=accelerator, devices=devices, **args)


def test_every_engine_has_factors_and_triton_runs_vllms(catalog: Catalog) -> None:
    engines = catalog.throughput.engines
    assert {"vllm", "triton", "jetstream-pathways"} <= set(engines)
    assert all(e.source for e in engines.values())
    strip = {"source"}
    assert engines["triton"].model_dump(exclude=strip) == engines["vllm"].model_dump(exclude=strip)


def test_decode_step_grows_with_batch_and_context(catalog: Catalog) -> None:
    cap = replica(catalog)
    assert cap.decode_step_s(1, 1000) < cap.decode_step_s(8, 8000) < cap.decode_step_s(32, 32000)
    assert cap.decode_step_s(8, 8000) < cap.decode_step_s(8, 160000)


def test_a_memory_bound_step_halves_with_bandwidth_and_ignores_compute(catalog: Catalog) -> None:
    cap = bare(replica(catalog))
    faster = dataclasses.replace(cap, hbm_bandwidth_Bps=2 * cap.hbm_bandwidth_Bps)
    more_flops = dataclasses.replace(cap, peak_flops=2 * cap.peak_flops)
    assert faster.decode_step_s(4, 4000) == pytest.approx(cap.decode_step_s(4, 4000) / 2)
    assert more_flops.decode_step_s(4, 4000) == cap.decode_step_s(4, 4000)


def test_a_compute_bound_step_halves_with_peak_and_ignores_bandwidth(catalog: Catalog) -> None:
    cap = bare(replica(catalog))
    more_flops = dataclasses.replace(cap, peak_flops=2 * cap.peak_flops)
    faster = dataclasses.replace(cap, hbm_bandwidth_Bps=2 * cap.hbm_bandwidth_Bps)
    assert more_flops.prefill_s(8192) == pytest.approx(cap.prefill_s(8192) / 2)
    assert faster.prefill_s(8192) == cap.prefill_s(8192)
    # large batches hit the compute ceiling in decode too: the matmul FLOPs alone
    batch = 4096
    assert cap.decode_step_s(batch, batch) >= 2 * cap.params * batch / (cap.peak_flops * cap.prefill_mfu)


def test_the_host_bounds_a_fast_step_per_running_sequence(catalog: Catalog) -> None:
    cap = dataclasses.replace(bare(replica(catalog)), host_s_per_sequence=1e-3)
    assert cap.decode_step_s(64, 64 * 100) == pytest.approx(64e-3)
    assert cap.decode_step_s(1, 100) == bare(cap).decode_step_s(1, 100)


def test_tensor_parallelism_pays_collectives_and_more_chips_stream_faster(catalog: Catalog) -> None:
    latency = catalog.throughput.engines["vllm"].model_copy(update={"allreduce_latency_us": 10.0})
    one = replica(catalog, "llama-3.1-70b", devices=4, tensor_parallel=1, factors=latency)
    four = replica(catalog, "llama-3.1-70b", devices=4, factors=latency)
    assert one.collective_fixed_s == one.collective_s_per_token == 0
    assert four.collective_fixed_s > 0 and four.collective_s_per_token > 0
    assert four.hbm_bandwidth_Bps == 4 * one.hbm_bandwidth_Bps
    assert four.decode_step_s(1, 100) > bare(four).decode_step_s(1, 100)
    pcie = replica(catalog, "llama-3.1-8b", "l4", devices=4)
    nvlink = replica(catalog, "llama-3.1-8b", "h100-80gb", devices=4)
    assert pcie.collective_s_per_token > nvlink.collective_s_per_token


def test_concurrency_is_bounded_by_the_kv_cache_the_memory_fit_leaves(catalog: Catalog) -> None:
    cap = replica(catalog, max_concurrency=1024)
    assert cap.concurrency_for(100) == 1024
    assert cap.concurrency_for(cap.kv_capacity_tokens // 10) == 10
    l4 = replica(catalog, accelerator="l4", max_concurrency=1024)
    assert l4.kv_capacity_tokens < cap.kv_capacity_tokens
    assert l4.decode_tokens_per_s(4000) < dataclasses.replace(l4, kv_capacity_tokens=10**9).decode_tokens_per_s(4000)


def test_chunked_prefill_shares_steps_and_the_budget_caps_them(catalog: Catalog) -> None:
    cap = bare(replica(catalog))
    decode_only = cap.decode_step_s(16, 16 * 600)
    point = serving_point(cap, 16, 1024, 128)
    assert point.tpot_s > decode_only  # the prompts of finished requests' successors ride in the steps
    tight = serving_point(dataclasses.replace(cap, max_batched_tokens=64), 16, 1024, 128)
    assert tight.ttft_s > point.ttft_s and tight.output_tokens_per_s < point.output_tokens_per_s


def test_past_the_budget_decodes_keep_their_pace_and_the_wait_moves_to_ttft(catalog: Catalog) -> None:
    """vLLM schedules running decodes before prompt chunks: when prompts outrun the budget, fewer sequences decode, each
    a token a step, and the rest wait in prefill."""
    budget, c, p, o = 256, 32, 1024, 128  # 32 decodes + 32 x 1024 / 128 prompt tokens a step > 256
    cap = dataclasses.replace(bare(replica(catalog)), max_batched_tokens=budget)
    point = serving_point(cap, c, p, o)
    fed = budget * o / (p + o)
    assert point.tpot_s == pytest.approx(cap.step_s(fed, fed * (p + o / 2), budget - fed))
    assert point.output_tokens_per_s == pytest.approx(fed / point.tpot_s)
    assert point.ttft_s > serving_point(dataclasses.replace(cap, max_batched_tokens=8192), c, p, o).ttft_s


def test_jetstream_interleaved_prefill_stalls_decode_and_disaggregated_does_not(catalog: Catalog) -> None:
    cap = replica(catalog, "llama-3.1-8b", "v6e", devices=8, engine="jetstream-pathways", static_cache_tokens=2048)
    assert cap.max_batched_tokens is None
    apart = dataclasses.replace(cap, disaggregated=True)
    assert serving_point(cap, 64, 1024, 256).tpot_s > serving_point(apart, 64, 1024, 256).tpot_s
    # a static cache reads every slot, running or not
    assert cap.decode_step_s(1, 10) == cap.decode_step_s(64, 64 * 2048)


def test_vllm_step_budget_defaults_follow_the_pinned_release(catalog: Catalog) -> None:
    budget = {a: default_max_batched_tokens(catalog, "vllm", a) for a in ("l4", "a100-80gb", "h100-80gb", "b200", "v6e")}
    assert budget["h100-80gb"] > budget["a100-80gb"] == budget["l4"]  # A100 keeps the small default despite 80 GB
    assert budget["b200"] > budget["h100-80gb"]
    assert default_max_batched_tokens(catalog, "jetstream-pathways", "v6e") is None


def test_low_precision_weights_use_the_low_precision_peak(catalog: Catalog) -> None:
    def h100x4(weight_dtype: Dtype) -> ReplicaCapacity:
        return replica(catalog, "llama-3.1-70b", devices=4, weight_dtype=weight_dtype)

    bf16, fp8 = h100x4("bf16"), h100x4("fp8")
    h100 = catalog.gpus["h100-80gb"]
    assert bf16.peak_flops == pytest.approx(4 * h100.peak_bf16_tflops * 1e12)
    assert fp8.peak_flops == pytest.approx(4 * h100.peak_int8_tops * 1e12)
    assert fp8.weight_bytes < bf16.weight_bytes


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_every_shipped_workload_has_a_finite_positive_capacity(env: str, catalog: Catalog) -> None:
    cfg = load_stack(env)
    assert cfg.workloads
    for name, workload in cfg.workloads.items():
        cap = replica_capacity(catalog, workload)
        numbers = [cap.decode_step_s(cap.max_concurrency, cap.max_concurrency * 1024), cap.prefill_s(1024)]
        numbers += [cap.kv_capacity_tokens, cap.max_concurrency, cap.decode_tokens_per_s(1024)]
        assert all(math.isfinite(n) and n > 0 for n in numbers), (env, name, cap)


def test_jetstream_concurrency_is_per_device_batch_times_slice_chips(catalog: Catalog) -> None:
    workload = load_stack("prod").workloads["llama-405b"]
    cap = replica_capacity(catalog, workload)
    assert cap.max_concurrency == 10 * 16
    assert cap.static_cache_tokens == workload.config.max_context
    assert cap.hbm_bandwidth_Bps == pytest.approx(16 * catalog.tpus["v6e"].hbm_bandwidth_gbps * 1e9)
    assert cap.peak_flops == pytest.approx(16 * catalog.tpus["v6e"].peak_int8_tops * 1e12)


def test_every_catalog_accelerator_has_peak_compute_and_an_interconnect(catalog: Catalog) -> None:
    accelerators: list[TpuGeneration | GpuType] = [*catalog.tpus.values(), *catalog.gpus.values()]
    for acc in accelerators:
        assert 0 < acc.peak_bf16_tflops < acc.peak_int8_tops, acc.name
        link = acc.ici_gbps if isinstance(acc, TpuGeneration) else acc.interconnect_gbps
        assert 0 < link < (acc.hbm_bandwidth_gbps if isinstance(acc, TpuGeneration) else acc.bandwidth_gbps), acc.name


@pytest.mark.parametrize(("engine", "accelerator", "devices"), [("vllm", "h100-80gb", 1), ("jetstream-pathways", "v6e", 8)])
def test_a_sequence_decodes_alongside_the_other_clients_prompts_not_its_own(
    catalog: Catalog, engine: str, accelerator: str, devices: int
) -> None:
    """Its own prompt is its TTFT: alone, it decodes with no prefill in its steps (vLLM's single-request ITL is flat in
    the prompt length but for the KV read); with company, the others' replacement prompts ride in them."""
    cap = bare(replica(catalog, accelerator=accelerator, devices=devices, engine=engine))
    p, o = 8192, 128
    alone = serving_point(cap, 1, p, o)
    assert alone.tpot_s == pytest.approx(cap.decode_step_s(1, p + o / 2))
    assert serving_point(cap, 2, p, o).tpot_s > cap.decode_step_s(2, 2 * (p + o / 2))
