"""What the workloads need together (infra/config/checks/capacity.py), and memory-fit errors that blame the key the
user set (infra/config/checks/fit_errors.py). Each rule: one change to BASE that makes it fire, one that does not."""

from __future__ import annotations

import math
import re
from collections import defaultdict
from typing import Any

import pytest
import yaml
from conftest import BASE, ENVIRONMENTS, H100_POOL, STACKS, mutate
from test_platform import load_stack

from components.cluster import SYSTEM_POOL_ZONES
from infra import sizing
from infra.catalog import Catalog
from infra.config import ConfigError, StackConfig, TpuPool, load_config
from infra.config.checks import CheckContext
from infra.config.checks.capacity import pool_uses
from infra.platform.composition import accelerator_limits

NS = "gke-inference"
SECOND_L4 = {"engine": "vllm", "model": "llama-3.1-8b", "gpu_pool": "l4", "max_context": 4096, "max_num_seqs": 4}
"""A second single-L4 server beside BASE's `small`: each fits BASE's one-node L4 pool alone, not both."""


def problems(raw: dict[str, Any]) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        load_config(raw, stack="t")
    return str(caught.value).splitlines()


def expected_of(line: str) -> int:
    """The number after 'expected >= ' in a problem line."""
    found = re.search(r"expected >= (\d+)", line)
    assert found, line
    return int(found[1])


# ------------------------------------------------------------------------------------------------ per pool


def test_two_workloads_that_fit_a_gpu_pool_alone_do_not_fit_together() -> None:
    raw = mutate(BASE, f"{NS}:workloads.second", SECOND_L4)
    assert problems(raw) == [
        f"{NS}:gpu_pools.l4.max_nodes_per_zone: 2 workloads need 2 g2-standard-8 nodes (2 GPUs) at their maximum "
        "(small 1 x 1 l4 GPU(s), second 1 x 1 l4 GPU(s)); the pool scales to 1 (1 per zone x 1 zone(s), 1 GPUs); "
        "expected >= 2, or fewer replicas, got 1"
    ]
    # What the line expects is enough.
    load_config(mutate(raw, f"{NS}:gpu_pools.l4.max_nodes_per_zone", 2), stack="t")


def test_the_maximum_is_the_hpa_ceiling_and_the_batch_parallelism() -> None:
    """Replicas count at full scale: an HPA's max_replicas and a batch Job's parallelism, not their floors."""
    raw = mutate(BASE, f"{NS}:gpu_pools.l4.max_nodes_per_zone", 2)
    raw = mutate(raw, f"{NS}:workloads.second", SECOND_L4)
    load_config(raw, stack="t")
    for key, value in (("autoscaling", {"min_replicas": 1, "max_replicas": 2}), ("batch", {"parallelism": 2})):
        (line,) = problems(mutate(raw, f"{NS}:workloads.second.{key}", value))
        assert line.startswith(f"{NS}:gpu_pools.l4.max_nodes_per_zone: 2 workloads need 3 ")
        assert "second 2 x 1 l4 GPU(s)" in line and expected_of(line) == 3


def test_pods_smaller_than_a_node_share_it() -> None:
    """On a two-L4 machine two single-L4 servers share one node: their GPUs and their CPU/memory (each half the
    node's schedulable share) fit it together, so one node holds both."""
    raw = mutate(BASE, f"{NS}:gpu_pools.l4.machine_type", "g2-standard-24")
    load_config(mutate(raw, f"{NS}:workloads.second", SECOND_L4), stack="t")
    third = mutate(mutate(raw, f"{NS}:workloads.second", SECOND_L4), f"{NS}:workloads.third", SECOND_L4)
    lines = [line for line in problems(third) if line.startswith(f"{NS}:gpu_pools.l4.")]
    assert len(lines) == 1 and "3 workloads need 2 g2-standard-24 nodes" in lines[0]


def test_a_workload_that_alone_outgrows_the_pool_is_reported_once() -> None:
    """The per-workload line names the key that sets its replicas; the pool gets no second line for that cause."""
    raw = mutate(BASE, f"{NS}:workloads.second", SECOND_L4)
    (line,) = problems(mutate(raw, f"{NS}:workloads.second.autoscaling", {"max_replicas": 2}))
    assert line.startswith(
        f"{NS}:workloads.second.autoscaling.max_replicas: 2 replica(s) of 1 GPU(s) need 2 g2-standard-8 node(s)"
    )


def single_host_pool(**pool: Any) -> dict[str, Any]:
    """BASE plus a one-slice single-host v6e pool `one` and two vLLM-on-TPU servers on it."""
    raw = mutate(
        BASE, f"{NS}:tpu_pools.one", {"topology": "2x4", "machine_type": "ct6e-standard-8t", "zones": ["us-east5-b"], **pool}
    )
    server = {"engine": "vllm", "model": "llama-3.1-8b", "tpu_pools": ["one"], "max_context": 4096, "max_num_seqs": 4}
    return mutate(mutate(raw, f"{NS}:workloads.t1", server), f"{NS}:workloads.t2", server | {"model": "gemma-2-9b"})


def test_two_servers_on_one_tpu_slice() -> None:
    (line,) = problems(single_host_pool())
    assert line == (
        f"{NS}:tpu_pools.one.slices: 2 workloads need 2 v6e 2x4 slices (16 chips) at their maximum "
        "(t1 1 x 1 slice(s), t2 1 x 1 slice(s)); the pool holds 1 (8 chips); expected >= 2, or fewer replicas, got 1"
    )
    load_config(single_host_pool(slices=2), stack="t")


def test_an_autoscaled_single_host_pool_blames_its_max_slices() -> None:
    (line,) = problems(single_host_pool(autoscaling={"min_slices": 0, "max_slices": 1}))
    assert line.startswith(f"{NS}:tpu_pools.one.autoscaling.max_slices: 2 workloads need 2 v6e 2x4 slices")
    assert line.endswith("expected >= 2 (x 1 node pool(s)), or fewer replicas, got 1")
    load_config(single_host_pool(autoscaling={"min_slices": 0, "max_slices": 2}), stack="t")


def test_workloads_placed_through_a_compute_class_count_against_its_pool() -> None:
    """A class that selects the pool (and may auto-create node pools) does not lift the pool's ceiling: NAP's GPU
    limit is the pools' maxima summed."""
    raw = mutate(BASE, f"{NS}:compute_classes.l4-class", {"pool": "l4"})
    load_config(raw, stack="t")
    (line,) = problems(mutate(raw, f"{NS}:workloads.second", SECOND_L4))
    assert line.startswith(
        f"{NS}:gpu_pools.l4.max_nodes_per_zone: 2 workloads need 2 g2-standard-8 nodes (2 GPUs) at their maximum, "
        "placed through compute class l4-class (small 1 x 1 l4 GPU(s), second 1 x 1 l4 GPU(s))"
    )


# ------------------------------------------------------------------------------------------------ endpoint pickers


def four_exposed_vllm_servers(**system_pool: Any) -> dict[str, Any]:
    """Gateway on, BASE's `small` plus three vLLM servers of other models on an H100 pool: four pickers at the chart's
    size, one per e2-standard-16 node."""
    raw = mutate(BASE, f"{NS}:gpu_pools.h100", H100_POOL | {"max_nodes_per_zone": 3})
    for name, model in (("m1", "gemma-2-9b"), ("m2", "gemma-2-27b"), ("m3", "mixtral-8x7b")):
        raw = mutate(raw, f"{NS}:workloads.{name}", {"engine": "vllm", "model": model, "gpu_pool": "h100", "max_num_seqs": 4})
    raw = mutate(raw, f"{NS}:cluster.system_pool", {"machine_type": "e2-standard-16", **system_pool})
    return mutate(raw, f"{NS}:gateway", {"enabled": True})


def test_endpoint_pickers_sum_against_the_system_pool() -> None:
    (line,) = problems(four_exposed_vllm_servers(max_nodes_per_zone=1))
    assert line == (
        f"{NS}:cluster.system_pool.max_nodes_per_zone: 4 endpoint pickers (8 CPU / 8 GiB each, one per exposed vLLM "
        f"workload) need 4 e2-standard-16 nodes; the system pool scales to {SYSTEM_POOL_ZONES} "
        f"(1 per zone x {SYSTEM_POOL_ZONES} zones); expected >= 2, a larger system_pool.machine_type, or smaller "
        "gateway.picker requests, got 1"
    )
    load_config(four_exposed_vllm_servers(max_nodes_per_zone=2), stack="t")
    # Smaller pickers pack two to a node.
    load_config(
        mutate(four_exposed_vllm_servers(max_nodes_per_zone=1), f"{NS}:gateway.picker", {"cpu": 4, "memory_gib": 4}), stack="t"
    )


# ------------------------------------------------------------------------------------------------ node auto-provisioning


def base_cluster_totals(catalog: Catalog) -> tuple[int, float]:
    """vCPU and GB of BASE's nodes at the workloads' maximum, from the catalog: the system pool at its maximum, the
    4x4 slice's VMs, the one L4 node."""
    cfg = load_config(BASE, stack="t")
    system = cfg.cluster.system_pool
    shapes = [(sizing.predefined_machine(system.machine_type), system.max_nodes_per_zone * SYSTEM_POOL_ZONES)]
    serve = cfg.tpu_pools["serve"].slice
    shapes.append((catalog.machines[serve.machine_type], serve.vms))
    shapes.append((catalog.machines[cfg.gpu_pools["l4"].config.machine_type], 1))
    return sum(m.vcpu * n for m, n in shapes if m), sum(m.memory_gb * n for m, n in shapes if m)


@pytest.mark.parametrize("key", ["cpu_max", "memory_max_gb"])
def test_auto_provisioning_ceilings_cover_every_node_the_workloads_scale_to(catalog: Catalog, key: str) -> None:
    total = base_cluster_totals(catalog)[0 if key == "cpu_max" else 1]
    (line,) = problems(mutate(BASE, f"{NS}:cluster.node_auto_provisioning.{key}", math.ceil(total) - 1))
    assert line.startswith(f"{NS}:cluster.node_auto_provisioning.{key}: the cluster's nodes at the workloads' maximum")
    assert expected_of(line) == math.ceil(total)
    load_config(mutate(BASE, f"{NS}:cluster.node_auto_provisioning.{key}", math.ceil(total)), stack="t")
    off = mutate(BASE, f"{NS}:cluster.node_auto_provisioning", {"enabled": False, key: 1})
    load_config(off, stack="t")


SPARE_TPU_POOL = {"topology": "2x2", "zones": ["us-east5-b"], "slices": 2, "autoscaling": {"min_slices": 1, "max_slices": 3}}
"""A single-host pool of two node pools, each autoscaled 1..3 slices, that no workload uses."""


def test_auto_provisioning_counts_an_idle_autoscaled_pool_at_its_minimum_not_its_maximum(catalog: Catalog) -> None:
    """GKE keeps an unused autoscaled pool at its minimum: those nodes count against cpu_max, the room it could grow
    to does not (no workload will grow it)."""
    raw = mutate(BASE, f"{NS}:tpu_pools.spare", SPARE_TPU_POOL)
    spare = load_config(raw, stack="t").tpu_pools["spare"]
    assert spare.config.autoscaling is not None
    kept = spare.config.slices * spare.config.autoscaling.min_slices * spare.slice.vms
    assert kept < spare.config.max_slices * spare.slice.vms
    total = base_cluster_totals(catalog)[0] + kept * catalog.machines[spare.slice.machine_type].vcpu
    (line,) = problems(mutate(raw, f"{NS}:cluster.node_auto_provisioning.cpu_max", math.ceil(total) - 1))
    assert line.startswith(f"{NS}:cluster.node_auto_provisioning.cpu_max: ") and expected_of(line) == math.ceil(total)
    load_config(mutate(raw, f"{NS}:cluster.node_auto_provisioning.cpu_max", math.ceil(total)), stack="t")


def test_auto_provisioning_accelerator_ceilings_are_the_pools_autoscaled_maxima() -> None:
    """Node auto-provisioning may create TPU chips up to what every pool scales to: each node pool at its autoscaling
    max_slices, not at the count it starts with."""
    cfg = load_config(mutate(BASE, f"{NS}:tpu_pools.spare", SPARE_TPU_POOL), stack="t")
    serve, spare = cfg.tpu_pools["serve"], cfg.tpu_pools["spare"]
    assert spare.config.autoscaling is not None and spare.config.autoscaling.max_slices > 1
    chips = (
        serve.config.slices * serve.slice.chips + spare.config.slices * spare.config.autoscaling.max_slices * spare.slice.chips
    )
    limits = {limit.resource_type: limit.maximum for limit in accelerator_limits(cfg)}
    assert limits[serve.slice.generation.gke_accelerator] == chips


def test_a_disaggregated_server_takes_a_slice_of_each_of_its_pools_per_replica() -> None:
    """prod's disaggregated llama2-70b runs prefill and decode on two slices of v6e-2x4 (its two slices); a second
    server on that pool, which alone fits, cannot have a third."""
    raw = yaml.safe_load((STACKS / "Pulumi.prod.yaml").read_text())["config"]
    workloads = raw[f"{NS}:workloads"]
    disaggregated = workloads["llama2-70b"]
    assert disaggregated["mode"] == "disaggregated" and disaggregated["tpu_pools"] == ["v6e-2x4", "v6e-2x4"]
    second = {k: v for k, v in disaggregated.items() if k != "mode"} | {"tpu_pools": ["v6e-2x4"], "justification": "throughput"}
    workloads["second"] = second
    raw[f"{NS}:gateway"]["routes"] = [n for n in workloads if n != "second"]  # one route per model name
    raw[f"{NS}:cluster"]["node_auto_provisioning"]["cpu_max"] = 10_000  # room for a third slice's VMs
    slices = raw[f"{NS}:tpu_pools"]["v6e-2x4"]["slices"]
    assert slices == 2
    (line,) = problems(raw)
    assert line.startswith(f"{NS}:tpu_pools.v6e-2x4.slices: 2 workloads need 3 v6e 2x4 slices")
    assert "llama2-70b 1 x 2 slice(s), second 1 x 1 slice(s)" in line and line.endswith("expected >= 3, or fewer replicas, got 2")
    load_config(mutate(raw, f"{NS}:tpu_pools.v6e-2x4.slices", 3), stack="prod")


# ------------------------------------------------------------------------------------------------ shipped stacks


@pytest.fixture(scope="module")
def shipped() -> dict[str, StackConfig]:
    return {env: load_stack(env) for env in ENVIRONMENTS}


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_shipped_pools_hold_their_workloads_and_nap_covers_them(
    shipped: dict[str, StackConfig], catalog: Catalog, env: str
) -> None:
    """Every shipped pool holds what its workloads scale to, and NAP's derived accelerator ceilings cover it (they are
    the pools' maxima summed, so a pool that holds its workloads keeps them under the ceiling)."""
    cfg = shipped[env]
    ctx = CheckContext(catalog, cfg.region, cfg.sections, cfg.project, cfg.stack)
    uses = pool_uses(ctx, dict(cfg.tpu_pools), dict(cfg.gpu_pools), dict(cfg.workloads))
    assert uses and all(u.needed is not None and u.needed <= u.capacity for u in uses)
    demand: dict[str, int] = defaultdict(int)
    for u in uses:
        pool = u.pool
        if isinstance(pool, TpuPool):
            demand[pool.slice.generation.gke_accelerator] += (u.needed or 0) * pool.slice.chips
        else:
            demand[pool.gpu.gke_accelerator] += sum(s.replicas * s.each for s in u.shares)
    limits = {limit.resource_type: limit.maximum for limit in accelerator_limits(cfg)}
    assert all(demand[a] <= limits[a] for a in demand)


# ------------------------------------------------------------------------------------------------ memory fit


def test_a_derived_gpu_count_that_outgrows_the_pool_blames_the_pool_not_gpus() -> None:
    """At a low gpu_memory_utilization the fewest L4s that hold llama-3.1-8b span several nodes; the stack sets no
    `gpus`, so the error names the model and gpu_pool."""
    (line,) = problems(mutate(BASE, f"{NS}:workloads.small.gpu_memory_utilization", 0.3))
    assert line.startswith(f"{NS}:workloads.small.gpu_pool: llama-3.1-8b (bf16 weights, bf16 KV, 4 x 4096 tokens) needs ")
    assert "but gpu_pools.l4 scales to 1" in line and line.endswith("got 'l4'")


def test_too_few_gpus_set_by_the_user_names_the_fewest_that_fit(catalog: Catalog) -> None:
    raw = mutate(BASE, f"{NS}:workloads.small", {**BASE[f"{NS}:workloads"]["small"], "model": "gemma-2-27b", "gpus": 1})
    raw = mutate(raw, f"{NS}:gpu_pools.l4.max_nodes_per_zone", 8)
    (line,) = problems(raw)
    fewest = sizing.smallest_gpu_count(
        catalog.models["gemma-2-27b"],
        catalog.gpus["l4"],
        engine="vllm",
        weight_dtype="bf16",
        kv_dtype="bf16",
        max_context=4096,
        max_num_seqs=4,
    )
    assert fewest and fewest > 1
    assert line.startswith(f"{NS}:workloads.small.gpus: gemma-2-27b")
    assert line.endswith(f"expected the fewest l4 GPUs that hold it, {fewest}, got 1")


def test_vllm_on_a_too_small_tpu_slice_names_the_smallest_single_host_slice(catalog: Catalog) -> None:
    raw = mutate(BASE, f"{NS}:tpu_pools.one", {"topology": "1x1", "zones": ["us-east5-b"]})
    server = {"engine": "vllm", "model": "llama-3.1-8b", "tpu_pools": ["one"], "max_context": 4096, "max_num_seqs": 64}
    (line,) = problems(mutate(raw, f"{NS}:workloads.t1", server))
    smallest = sizing.smallest_tpu_server_slice(
        catalog,
        "v6e",
        catalog.models["llama-3.1-8b"],
        weight_dtype="bf16",
        kv_dtype="bf16",
        max_context=4096,
        max_num_seqs=64,
        gpu_memory_utilization=0.9,
    )
    assert smallest is not None and not smallest.multi_host and smallest.chips > 1
    assert line.startswith(f"{NS}:workloads.t1.tpu_pools: llama-3.1-8b")
    assert "a slice of tpu_pools.one (v6e 1x1)" in line
    assert f"(smallest v6e that fits: {smallest.topology} on {smallest.machine_type})" in line


def test_replicas_smaller_than_a_node_share_it() -> None:
    """Two one-GPU replicas fit one two-L4 node (the scheduler packs them); a third needs a second node."""
    raw = mutate(BASE, f"{NS}:gpu_pools.l4", {"gpu": "l4", "machine_type": "g2-standard-24", "zones": ["us-east5-a"]})
    two = mutate(
        raw, f"{NS}:workloads.small", {**BASE[f"{NS}:workloads"]["small"], "gpus": 1, "autoscaling": {"max_replicas": 2}}
    )
    load_config(two, stack="t")
    three = mutate(two, f"{NS}:workloads.small.autoscaling", {"max_replicas": 3})
    assert problems(three) == [
        f"{NS}:workloads.small.autoscaling.max_replicas: 3 replica(s) of 1 GPU(s) need 2 g2-standard-24 node(s), but "
        "gpu_pools.l4 scales to 1; expected <= 2 replica(s), or a larger pool, got 3"
    ]
