"""Sizing: the seed documents' numbers, and properties that hold for every catalog entry."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from infra import sizing
from infra.catalog import Calibration, Catalog
from infra.catalog import load as load_catalog

CATALOG = load_catalog()
SEED_405B = dict(weight_dtype="int8", kv_dtype="int8", max_context=2048, per_device_batch_size=10)


def test_seed_405b_smallest_v6e_slice_is_4x4(catalog: Catalog) -> None:
    model = catalog.models["llama-3.1-405b"]
    smallest = sizing.smallest_tpu_slice(catalog, "v6e", model, **SEED_405B)
    assert smallest is not None
    assert (smallest.topology, smallest.chips, smallest.vms, smallest.machine_type) == ("4x4", 16, 4, "ct6e-standard-4t")
    assert smallest.chips_per_vm == 4  # google.com/tpu: "4"
    assert sizing.lws_group_size(smallest) == 5  # hosts + 1 leader
    assert sizing.pathways_flags(smallest) == sizing.PathwaysFlags("tpuv6e:4x4", 1)
    assert sizing.maxtext_parallelism(model, smallest.chips) == sizing.MaxTextParallelism(fsdp=1, autoregressive=2, tensor=8)


def test_seed_405b_does_not_fit_2x4_and_is_tight_on_4x4(catalog: Catalog) -> None:
    model = catalog.models["llama-3.1-405b"]
    for machine in catalog.tpus["v6e"].shapes["2x4"]:
        assert not sizing.tpu_fit(model, catalog.tpu_slice("v6e", "2x4", machine), **SEED_405B).fits
    fit = sizing.tpu_fit(model, catalog.tpu_slice("v6e", "4x4"), **SEED_405B)
    # sizing-prices §3.3: ~406 GB weights + 84.6 GB KV for 160 sequences x 2048 tokens vs 512 GB.
    assert fit.sequences == 160
    assert fit.kv_bytes == pytest.approx(84.56e9, rel=1e-3)
    assert 1.03 < fit.ratio < 1.12


def test_seed_disaggregated_70b_on_two_2x4_slices(catalog: Catalog) -> None:
    slice_ = catalog.tpu_slice("v6e", "2x4", "ct6e-standard-4t")
    assert (slice_.vms, slice_.chips_per_vm) == (2, 4)
    assert sizing.lws_group_size(slice_, slices=2) == 5
    assert sizing.pathways_flags(slice_, 2) == sizing.PathwaysFlags("tpuv6e:2x4", 2)
    fit = sizing.tpu_fit(
        catalog.models["llama-2-70b"], slice_, weight_dtype="int8", kv_dtype="int8", max_context=2048, per_device_batch_size=1
    )
    assert fit.ratio == pytest.approx(3.54, abs=0.05)  # sizing-prices §3.3: ~3.6 per slice


def test_kv_per_token_matches_reference_table(catalog: Catalog) -> None:
    kib = {name: sizing.kv_bytes_per_token(m, "bf16") / 1024 for name, m in catalog.models.items()}
    assert kib["llama-3.1-8b"] == 128
    assert kib["llama-3.1-405b"] == 504
    assert kib["gemma-2-9b"] == 336
    assert kib["gemma-3-27b"] == 496


@pytest.mark.parametrize("name", sorted(CATALOG.models))
def test_published_params_match_dimensions(name: str) -> None:
    model = CATALOG.models[name]
    assert sizing.params_from_dims(model) == pytest.approx(model.params_b * 1e9, rel=0.02)


# Exact parameter counts of two checkpoints, RMSNorm weights included: the safetensors total Hugging Face shows for
# meta-llama/Llama-3.1-8B and mistralai/Mixtral-8x7B-v0.1 (keras-hub's mixtral_presets.py, "params": 46702792704).
EXACT_PARAMS = {"llama-3.1-8b": 8_030_261_248, "mixtral-8x7b": 46_702_792_704}


@pytest.mark.parametrize("name", sorted(EXACT_PARAMS))
def test_dimensions_give_the_exact_count_with_the_norms(name: str) -> None:
    """params_from_dims leaves out only the RMSNorm weights (two per layer and the final one, `hidden` each): the
    MoE router (hidden x experts per layer) and the untied embeddings are in, to the parameter."""
    model = CATALOG.models[name]
    norms = (2 * model.layers + 1) * model.hidden
    assert sizing.params_from_dims(model) + norms == EXACT_PARAMS[name]


def test_an_moe_adds_its_experts_mlps_and_a_router_from_two_experts_up() -> None:
    """Each extra expert is another MLP; any MoE layer (two experts or more) also has a router of hidden x experts."""
    dense = CATALOG.models["llama-3.1-8b"]
    for experts in (2, 8):
        moe = dense.model_copy(update={"experts": experts})
        per_layer = (experts - 1) * 3 * dense.hidden * dense.mlp + dense.hidden * experts
        assert sizing.params_from_dims(moe) - sizing.params_from_dims(dense) == dense.layers * per_layer


@pytest.mark.parametrize("provisioning", ["on_demand", "spot"])
def test_a_tpu_pool_costs_its_chips_times_its_slices_where_the_region_has_a_price(catalog: Catalog, provisioning: str) -> None:
    slice_ = catalog.tpu_slice("v6e", "4x4")
    row = catalog.tpu_chip_price("v6e", "us-east5")
    assert row is not None
    one = sizing.tpu_pool_hourly(catalog, slice_, "us-east5", provisioning, 1)
    assert one == row.hourly(provisioning) * slice_.chips
    assert sizing.tpu_pool_hourly(catalog, slice_, "us-east5", provisioning, 3) == 3 * one
    assert catalog.tpu_chip_price("v6e", "antarctica-south1") is None
    assert sizing.tpu_pool_hourly(catalog, slice_, "antarctica-south1", provisioning, 1) is None


def test_gpu_examples_from_reference(catalog: Catalog) -> None:
    """sizing-prices §3.3: 70B bf16 is not feasible on 2x H100 but is on 4; 8B fits one L4."""
    h100, l4 = catalog.gpus["h100-80gb"], catalog.gpus["l4"]
    kwargs = dict(engine="vllm", weight_dtype="bf16", kv_dtype="bf16", max_context=2048, max_num_seqs=8)
    assert not sizing.gpu_fit(catalog.models["llama-3.1-70b"], h100, 2, **kwargs).fits
    assert sizing.smallest_gpu_count(catalog.models["llama-3.1-70b"], h100, **kwargs) == 4
    assert sizing.smallest_gpu_count(catalog.models["llama-3.1-8b"], l4, **kwargs) == 1


tpu_slices = st.sampled_from([s for gen in CATALOG.tpus for s in CATALOG.tpu_slices(gen)])
models = st.sampled_from(sorted(CATALOG.models.values(), key=lambda m: m.name))
dtypes = st.sampled_from(["bf16", "fp8", "int8", "int4"])


def test_maxtext_tensor_parallelism_divides_both_the_chips_and_the_heads(catalog: Catalog) -> None:
    """On a 2x4 slice (8 chips) a model with 12 query heads gets tensor 4 (8 does not divide 12, 6 not 8): both must
    divide, the rest of the chips go to autoregressive. Catalog models have power-of-two heads, where the two agree."""
    model = catalog.models["llama-3.1-8b"].model_copy(update={"q_heads": 12})
    assert sizing.maxtext_parallelism(model, 8) == sizing.MaxTextParallelism(fsdp=1, autoregressive=2, tensor=4)


def test_pods_are_packed_largest_first() -> None:
    """3 + 2 + 1 + 1 + 1 CPUs fill two 4-CPU nodes when the largest go first (3+1, 2+1+1); smallest first would leave
    1 free on the first node and 2 on the second, and open a third for the 3-CPU pod."""
    node = sizing.Pod(0, sizing.Resources(4000, 4096))
    pods = [sizing.Pod(0, sizing.Resources(cpu, 256)) for cpu in (1000, 1000, 2000, 3000, 1000)]
    assert sizing.nodes_for(pods, node) == 2
    assert sizing.nodes_for([*pods, sizing.Pod(0, sizing.Resources(5000, 256))], node) is None  # fits no node


@pytest.mark.parametrize("scarce", ["devices", "cpu", "memory"])
def test_each_of_devices_cpu_and_memory_alone_bounds_the_pods_a_node_takes(scarce: str) -> None:
    """A node holds 4 of the scarce resource and plenty of the others: four 1-unit pods share one node, a fifth opens
    a second, a 5-unit pod fits none."""

    def pod(units: int, plenty: int) -> sizing.Pod:
        amounts = {"devices": plenty, "cpu": plenty * 1000, "memory": plenty * 1024} | {
            scarce: {"devices": units, "cpu": units * 1000, "memory": units * 1024}[scarce]
        }
        return sizing.Pod(amounts["devices"], sizing.Resources(amounts["cpu"], amounts["memory"]))

    node = pod(4, 100)
    assert sizing.nodes_for([pod(1, 1)] * 4, node) == 1
    assert sizing.nodes_for([pod(1, 1)] * 5, node) == 2
    assert sizing.nodes_for([pod(1, 1)] * 9, node) == 3
    assert sizing.nodes_for([pod(5, 1)], node) is None


@given(slice_=tpu_slices)
def test_slices_are_whole_vms(slice_: object) -> None:
    assert slice_.chips == slice_.vms * slice_.chips_per_vm  # type: ignore[attr-defined]
    assert slice_.multi_host == (slice_.vms > 1)  # type: ignore[attr-defined]


@settings(max_examples=200)
@given(model=models, chips=st.sampled_from([1, 4, 8, 16, 32, 64, 128, 256]))
def test_maxtext_mesh_covers_every_chip(model: object, chips: int) -> None:
    mesh = sizing.maxtext_parallelism(model, chips)
    assert mesh.product == chips
    assert model.q_heads % mesh.tensor == 0  # type: ignore[attr-defined]
    assert mesh.tensor <= sizing.MAX_TENSOR_PARALLEL_CHIPS


@settings(max_examples=200)
@given(
    model=models,
    wd=dtypes,
    kd=dtypes,
    ctx=st.integers(128, 32768),
    batch=st.integers(1, 32),
    generation=st.sampled_from(sorted(CATALOG.tpus)),
)
def test_smallest_slice_is_minimal(model: object, wd: str, kd: str, ctx: int, batch: int, generation: str) -> None:
    kwargs = dict(weight_dtype=wd, kv_dtype=kd, max_context=ctx, per_device_batch_size=batch)
    chosen = sizing.smallest_tpu_slice(CATALOG, generation, model, **kwargs)
    shapes = CATALOG.tpu_slices(generation)
    fits = [sizing.tpu_fit(model, s, **kwargs).fits for s in shapes]
    if chosen is None:
        assert not any(fits)
    else:
        index = shapes.index(chosen)
        assert fits[index] and not any(fits[:index])


@settings(max_examples=200)
@given(model=models, seqs=st.integers(1, 512), extra=st.integers(1, 512), ctx=st.integers(128, 16384))
def test_more_sequences_need_more_memory(model: object, seqs: int, extra: int, ctx: int) -> None:
    gpu = CATALOG.gpus["h100-80gb"]
    kwargs = dict(engine="vllm", weight_dtype="bf16", kv_dtype="bf16", max_context=ctx)
    a = sizing.gpu_fit(model, gpu, 8, max_num_seqs=seqs, **kwargs)
    b = sizing.gpu_fit(model, gpu, 8, max_num_seqs=seqs + extra, **kwargs)
    assert b.required_bytes > a.required_bytes and b.ratio < a.ratio


@pytest.mark.parametrize(("gpus", "per_vm", "tp", "pp", "nodes"), [(8, 8, 4, 2, 1), (16, 8, 4, 4, 2), (4, 8, 4, 1, 1)])
def test_an_explicit_tensor_parallel_size_puts_the_rest_in_pipeline_stages(
    gpus: int, per_vm: int, tp: int, pp: int, nodes: int
) -> None:
    layout = sizing.gpu_parallelism(gpus, per_vm, tp)
    assert layout == sizing.GpuParallelism(tensor_parallel=tp, pipeline_parallel=pp, nodes=nodes)
    assert type(layout.pipeline_parallel) is int  # rendered as --pipeline-parallel-size: "2.0" is no size vLLM takes


def test_bf16_weights_take_two_bytes_per_parameter(catalog: Catalog) -> None:
    """llama-3.1-8b's 8.03 B parameters in bf16: 16.06 GB (decimal), to float precision."""
    assert sizing.weight_bytes(catalog.models["llama-3.1-8b"], "bf16") == pytest.approx(16.06e9, rel=1e-12)


@given(gpus=st.integers(1, 64), per_vm=st.sampled_from([1, 2, 4, 8]))
def test_gpu_layout_places_every_gpu(gpus: int, per_vm: int) -> None:
    layout = sizing.gpu_parallelism(gpus, per_vm)
    assert layout.tensor_parallel <= per_vm
    assert layout.tensor_parallel * layout.pipeline_parallel >= gpus
    assert layout.nodes == layout.pipeline_parallel


# ------------------------------------------------------------------------------ startup budget


@pytest.mark.parametrize("observed", CATALOG.loading.paths["gcs-anywhere-cache"].calibration)
def test_load_rate_is_no_faster_than_any_calibration_point(observed: Calibration) -> None:
    """The per-host rate predicts each observed restore in no less than the observed time (conservative)."""
    path = CATALOG.loading.paths["gcs-anywhere-cache"]
    weights = sizing.weight_bytes(CATALOG.models[observed.model], observed.weight_dtype)
    estimate = sizing.startup_estimate(
        CATALOG.loading, path=path.name, engine="jetstream-pathways", weight_bytes=weights, hosts=observed.hosts
    )
    assert estimate.load_s >= observed.observed_s


def test_seed_startup_budgets_cover_twice_the_documented_restores(catalog: Catalog) -> None:
    """Seed 001: 405B restores in ~7 min on v6e-16, 70B in ~2 min on a 2x4; the budget is >= 2x either."""
    for model, dtype, hosts, documented in (("llama-3.1-405b", "int8", 4, 420), ("llama-2-70b", "int8", 2, 120)):
        weights = sizing.weight_bytes(catalog.models[model], dtype)
        e = sizing.startup_estimate(
            catalog.loading, path="gcs-anywhere-cache", engine="jetstream-pathways", weight_bytes=weights, hosts=hosts
        )
        assert e.budget_s >= 2 * documented
        assert e.budget_s == e.probe_failure_threshold * sizing.PROBE_PERIOD_SECONDS >= e.predicted_s * e.safety_factor


@given(st.floats(1e9, 2e12), st.integers(1, 64))
@settings(max_examples=50, deadline=None)
def test_more_hosts_or_fewer_bytes_never_lengthen_the_budget(weights: float, hosts: int) -> None:
    one = sizing.startup_estimate(
        CATALOG.loading, path="gcs-anywhere-cache", engine="jetstream-pathways", weight_bytes=weights, hosts=hosts
    )
    more = sizing.startup_estimate(
        CATALOG.loading, path="gcs-anywhere-cache", engine="jetstream-pathways", weight_bytes=weights, hosts=hosts + 1
    )
    less = sizing.startup_estimate(
        CATALOG.loading, path="gcs-anywhere-cache", engine="jetstream-pathways", weight_bytes=weights / 2, hosts=hosts
    )
    assert more.budget_s <= one.budget_s and less.budget_s <= one.budget_s


def test_each_engine_adds_its_catalog_warmup_and_an_engine_without_one_none(catalog: Catalog) -> None:
    weights = sizing.weight_bytes(catalog.models["llama-3.1-8b"], "bf16")
    for engine, warmup in catalog.loading.warmup.items():
        estimate = sizing.startup_estimate(catalog.loading, path="gcsfuse", engine=engine, weight_bytes=weights, hosts=1)
        assert estimate.warmup_s == warmup.seconds > 0
    bare = catalog.loading.model_copy(update={"warmup": {}})
    assert sizing.startup_estimate(bare, path="gcsfuse", engine="vllm", weight_bytes=weights, hosts=1).warmup_s == 0


# ------------------------------------------------------------------------------ pod resources


@pytest.mark.parametrize("machine", sorted(CATALOG.machines))
def test_schedulable_is_below_the_machine_and_positive(machine: str) -> None:
    shape, node = CATALOG.machines[machine], sizing.schedulable(CATALOG.machines[machine])
    assert 0 < node.cpu_millis < shape.vcpu * 1000
    assert 0 < node.memory_mib * sizing.MIB < shape.memory_gb * sizing.GB


def test_a_16_gb_node_keeps_gke_s_2_6_gib_reserve_and_the_eviction_threshold() -> None:
    """GKE reserves 25 % of the first 4 GiB of memory, 20 % of the next 4 and 10 % of the next 8: 2.6 GiB on a 16 GB
    e2-standard-4, plus the 100 MiB eviction threshold; the DaemonSet headroom comes off what is left."""
    machine = sizing.predefined_machine("e2-standard-4")
    assert machine is not None and machine.memory_gb == 16
    allocatable_mib = 16 * sizing.GB / sizing.MIB - 2.6 * 1024 - 100
    assert sizing.schedulable(machine).memory_mib == int(allocatable_mib) - sizing.DAEMONSET_HEADROOM[1]


@pytest.mark.parametrize("machine", [m for g in CATALOG.tpus.values() for m in g.machine_types])
def test_pathways_leader_and_worker_fit_one_node_together(machine: str) -> None:
    pods, node = sizing.pathways_pod_resources(CATALOG.machines[machine]), sizing.schedulable(CATALOG.machines[machine])
    assert pods.leader.cpu_millis + pods.worker.cpu_millis <= node.cpu_millis
    assert pods.leader.memory_mib + pods.worker.memory_mib <= node.memory_mib
    assert pods.worker.cpu_millis > pods.leader.cpu_millis


def test_every_machine_type_of_the_catalog_has_a_shape(catalog: Catalog) -> None:
    machines = {m for g in catalog.tpus.values() for m in g.machine_types} | {
        m for g in catalog.gpus.values() for m in g.machine_types
    }
    assert machines <= set(catalog.machines)
