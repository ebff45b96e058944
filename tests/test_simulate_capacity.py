"""The capacity model: it reproduces the published figures it was fitted to, and behaves as a roofline does."""

from __future__ import annotations

import dataclasses
import math

import pytest
from conftest import ENVIRONMENTS
from test_platform import load_stack

from infra.catalog import Catalog, Dtype, GpuType, ThroughputPoint, TpuGeneration
from infra.simulate.capacity import ReplicaCapacity, capacity_of, replica_capacity

TRAINING_FLOPS_PER_FORWARD = 3
"""A training step costs forward + backward = 3x the forward FLOPs that prefill costs."""


def _points(catalog: Catalog) -> list[tuple[str, ThroughputPoint]]:
    return [(engine, p) for engine, t in catalog.throughput.engines.items() for p in t.calibration]


def _predicted(catalog: Catalog, engine: str, point: ThroughputPoint) -> float:
    cap = capacity_of(
        catalog,
        engine=engine,
        model=point.model,
        accelerator=point.accelerator,
        devices=point.devices,
        weight_dtype=point.weight_dtype,
        kv_dtype=point.kv_dtype,
        max_concurrency=point.batch,
    )
    if point.kind == "decode":
        return point.batch / cap.decode_step_s(point.batch, point.batch * point.context_tokens)
    return 1 / (TRAINING_FLOPS_PER_FORWARD * cap.prefill_s(1))


@pytest.fixture(scope="module")
def llama8b_l4(catalog: Catalog) -> ReplicaCapacity:
    return capacity_of(
        catalog,
        engine="vllm",
        model="llama-3.1-8b",
        accelerator="l4",
        devices=1,
        weight_dtype="bf16",
        kv_dtype="bf16",
        max_concurrency=32,
    )


def test_every_engine_has_calibrated_or_documented_factors(catalog: Catalog) -> None:
    for engine, t in catalog.throughput.engines.items():
        assert 0 < t.decode_bandwidth_efficiency <= 1 and 0 < t.prefill_mfu <= 1, engine
        assert t.decode_source and t.prefill_source, engine
    assert {"vllm", "triton", "jetstream-pathways"} <= set(catalog.throughput.engines)
    assert {p.kind for _, p in _points(catalog)} == {"decode", "training"}


def test_calibration_points_reproduce_their_recorded_error(catalog: Catalog) -> None:
    for engine, point in _points(catalog):
        error_pct = (_predicted(catalog, engine, point) - point.published) / point.published * 100
        assert error_pct == pytest.approx(point.error_pct, abs=0.1), (engine, point.source)


def test_decode_step_grows_with_batch_and_context(llama8b_l4: ReplicaCapacity) -> None:
    cap = llama8b_l4
    assert cap.decode_step_s(1, 1000) < cap.decode_step_s(8, 8000) < cap.decode_step_s(32, 32000)
    assert cap.decode_step_s(8, 8000) < cap.decode_step_s(8, 16000)
    assert cap.decode_step_s(1, 0) == pytest.approx(cap.weight_bytes / (cap.hbm_bandwidth_Bps * cap.decode_efficiency))


def test_prefill_is_linear_in_prompt_tokens(llama8b_l4: ReplicaCapacity) -> None:
    one = llama8b_l4.prefill_s(1)
    for tokens in (128, 1024, 8192):
        assert llama8b_l4.prefill_s(tokens) == pytest.approx(tokens * one)


def test_doubling_hbm_bandwidth_halves_the_decode_step(llama8b_l4: ReplicaCapacity) -> None:
    faster = dataclasses.replace(llama8b_l4, hbm_bandwidth_Bps=2 * llama8b_l4.hbm_bandwidth_Bps)
    assert faster.decode_step_s(16, 40000) == pytest.approx(llama8b_l4.decode_step_s(16, 40000) / 2)


def test_low_precision_weights_use_the_low_precision_peak(catalog: Catalog) -> None:
    def h100x4(weight_dtype: Dtype) -> ReplicaCapacity:
        return capacity_of(
            catalog,
            engine="vllm",
            model="llama-3.1-70b",
            accelerator="h100-80gb",
            devices=4,
            weight_dtype=weight_dtype,
            kv_dtype="bf16",
            max_concurrency=8,
        )

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
        # The engine contract's fields default to None/False: 'not set' (issue #19 part B placeholder).
        numbers = [getattr(cap, f.name) for f in dataclasses.fields(cap) if f.default is dataclasses.MISSING]
        numbers += [cap.decode_step_s(cap.max_concurrency, cap.max_concurrency * 1024), cap.prefill_s(1024)]
        assert all(math.isfinite(n) and n > 0 for n in numbers), (env, name, cap)


def test_jetstream_concurrency_is_per_device_batch_times_slice_chips(catalog: Catalog) -> None:
    workload = load_stack("prod").workloads["llama-405b"]
    cap = replica_capacity(catalog, workload)
    assert cap.max_concurrency == 10 * 16
    assert cap.hbm_bandwidth_Bps == pytest.approx(16 * catalog.tpus["v6e"].hbm_bandwidth_gbps * 1e9)
    assert cap.peak_flops == pytest.approx(16 * catalog.tpus["v6e"].peak_int8_tops * 1e12)


def test_every_catalog_accelerator_has_peak_compute(catalog: Catalog) -> None:
    accelerators: list[TpuGeneration | GpuType] = [*catalog.tpus.values(), *catalog.gpus.values()]
    for acc in accelerators:
        assert 0 < acc.peak_bf16_tflops < acc.peak_int8_tops, acc.name
