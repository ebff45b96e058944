"""Config checks that no other test made fire (found by mutation testing, issue #21): each bad input gives exactly its
line, and the nearest good input loads.

Compute classes (one per pool, a pool that exists, a ladder whose reservation rung has a reservation, distinct rungs,
spot last); a reservation named on a pool that does not consume it; objectives on a workload the gateway does not
expose; a tensor-parallel degree that splits the query heads but not the KV heads. Then the proof of coverage: every
check function of infra/config/checks fires on some bad input of the suite's tables and on none of the good stacks.
"""

from __future__ import annotations

import ast
import contextlib
import re
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import test_config
import test_inputs
import yaml
from conftest import BASE, ENVIRONMENTS, REPO, STACKS, mutate
from test_capacity import four_exposed_vllm_servers
from test_config import problems, shared_pathways_pool
from test_gateway_objects import BAD_GATEWAYS
from test_monitoring import BAD_INPUTS as BAD_MONITORING

from infra import sizing
from infra.catalog import Catalog
from infra.config import ConfigError, load_config
from infra.config.checks.context import CheckContext

NS = "gke-inference"
CLASSES = f"{NS}:compute_classes"


def qwen_on_tpu(pool: str) -> dict[str, Any]:
    """A vLLM server of the catalog's one model whose query heads (14) are not a power of two, on a TPU pool."""
    return {"engine": "vllm", "model": "qwen2.5-0.5b", "tpu_pools": [pool], "max_context": 4096, "max_num_seqs": 64}


def with_changes(changes: list[tuple[str, Any]]) -> dict[str, Any]:
    raw = BASE
    for path, value in changes:
        raw = mutate(raw, path, value)
    return raw


# (case, changes to BASE that make the check fire, its one line, changes that do not)
CASES = [
    (
        "two classes select one pool",
        [(CLASSES, {"a": {"pool": "serve", "ladder": ["on_demand"]}, "b": {"pool": "serve", "ladder": ["on_demand"]}})],
        f"{CLASSES}.b.pool: pool serve is already selected by compute class a (a node carries one class label); "
        "expected one class per pool, got 'serve'",
        [(CLASSES, {"a": {"pool": "serve", "ladder": ["on_demand"]}, "b": {"pool": "l4", "ladder": ["on_demand"]}})],
    ),
    (
        "a class selects no pool",
        [(CLASSES, {"a": {"pool": "nope", "ladder": ["on_demand"]}})],
        f"{CLASSES}.a.pool: no TPU or GPU pool named nope; expected one of l4, serve, got 'nope'",
        [(CLASSES, {"a": {"pool": "serve", "ladder": ["on_demand"]}})],
    ),
    (
        "a reservation rung on a pool without a reservation",
        [(CLASSES, {"a": {"pool": "serve", "ladder": ["reservation", "on_demand"]}})],
        f'{CLASSES}.a.ladder: pool serve names no reservation to try first; expected a reservation on serve, got ["reservation", "on_demand"]',
        [
            (CLASSES, {"a": {"pool": "serve", "ladder": ["reservation", "on_demand"]}}),
            (f"{NS}:tpu_pools.serve.provisioning", "reservation"),
            (f"{NS}:tpu_pools.serve.reservation", "v6e-serve"),
        ],
    ),
    (
        "a rung twice",
        [(CLASSES, {"a": {"pool": "serve", "ladder": ["on_demand", "on_demand"]}})],
        f'{CLASSES}.a.ladder: each capacity rung once; expected distinct rungs, got ["on_demand", "on_demand"]',
        [(CLASSES, {"a": {"pool": "serve", "ladder": ["on_demand", "spot"]}})],
    ),
    (
        "no rung",
        [(CLASSES, {"a": {"pool": "serve", "ladder": []}})],
        f"{CLASSES}.a.ladder: each capacity rung once; expected distinct rungs, got []",
        [(CLASSES, {"a": {"pool": "serve", "ladder": ["on_demand"]}})],
    ),
    (
        "spot before flex-start",
        [(CLASSES, {"a": {"pool": "serve", "ladder": ["spot", "flex_start"]}})],
        f'{CLASSES}.a.ladder: spot is the last resort; expected flex_start before spot, got ["spot", "flex_start"]',
        [(CLASSES, {"a": {"pool": "serve", "ladder": ["flex_start", "spot"]}})],
    ),
    (
        "a GPU pool names a reservation it does not consume",
        [(f"{NS}:gpu_pools.l4.reservation", "l4-reserved")],
        f"{NS}:gpu_pools.l4.provisioning: a reservation is named but not consumed; expected 'reservation', got 'on_demand'",
        [(f"{NS}:gpu_pools.l4.reservation", "l4-reserved"), (f"{NS}:gpu_pools.l4.provisioning", "reservation")],
    ),
    (
        "a TPU pool names a reservation it does not consume",
        [(f"{NS}:tpu_pools.serve.reservation", "v6e-serve")],
        f"{NS}:tpu_pools.serve.provisioning: a reservation is named but not consumed; expected 'reservation', got 'on_demand'",
        [(f"{NS}:tpu_pools.serve.reservation", "v6e-serve"), (f"{NS}:tpu_pools.serve.provisioning", "reservation")],
    ),
    (
        "objectives on a workload the gateway does not expose",
        [(f"{NS}:workloads.small.objectives", {"interactive": 10})],
        f"{NS}:workloads.small.objectives: objectives applies to a real-time vllm server behind the gateway (its endpoint "
        'picker reads them); this vllm workload would ignore it; expected the key removed, got {"interactive": 10}',
        [(f"{NS}:workloads.small.objectives", {"interactive": 10}), (f"{NS}:gateway", {"enabled": True})],
    ),
    (
        "two servers that each fit the GPU pool but not together",
        [(f"{NS}:workloads.small2", BASE[f"{NS}:workloads"]["small"])],
        f"{NS}:gpu_pools.l4.max_nodes_per_zone: 2 workloads need 2 g2-standard-8 nodes (2 GPUs) at their maximum (small 1 "
        "x 1 l4 GPU(s), small2 1 x 1 l4 GPU(s)); the pool scales to 1 (1 per zone x 1 zone(s), 1 GPUs); expected >= 2, or "
        "fewer replicas, got 1",
        [(f"{NS}:workloads.small2", BASE[f"{NS}:workloads"]["small"]), (f"{NS}:gpu_pools.l4.max_nodes_per_zone", 2)],
    ),
    (
        "the derived GPU count outgrows the pool",
        [(f"{NS}:workloads.small.gpu_memory_utilization", 0.3)],
        f"{NS}:workloads.small.gpu_pool: llama-3.1-8b (bf16 weights, bf16 KV, 4 x 4096 tokens) needs 4 l4 GPUs per "
        "replica, 4 g2-standard-8 node(s), but gpu_pools.l4 scales to 1; expected a pool of >= 4 nodes (max_nodes_per_zone "
        "x zones), or a GPU with more memory, got 'l4'",
        [(f"{NS}:workloads.small.gpu_memory_utilization", 0.3), (f"{NS}:gpu_pools.l4.max_nodes_per_zone", 4)],
    ),
    (
        "node auto-provisioning's CPU ceiling below the nodes",
        [(f"{NS}:cluster.node_auto_provisioning.cpu_max", 1)],
        f"{NS}:cluster.node_auto_provisioning.cpu_max: the cluster's nodes at the workloads' maximum have 824 vCPU",
        [(f"{NS}:cluster.node_auto_provisioning.cpu_max", 824)],
    ),
    (
        "workloads without Managed Prometheus",
        [(f"{NS}:observability", {"managed_prometheus": False, "custom_metrics_adapter": False})],
        f"{NS}:observability.managed_prometheus: serving workloads get PodMonitorings, which need Managed Prometheus; "
        "expected true, got false",
        [(f"{NS}:observability", {"managed_prometheus": True, "custom_metrics_adapter": False})],
    ),
    (
        "a TPU vLLM server whose slice's chips do not divide the heads",
        [(f"{NS}:tpu_pools.four", {"topology": "2x2", "zones": ["us-east5-b"]}), (f"{NS}:workloads.t", qwen_on_tpu("four"))],
        f"{NS}:workloads.t.tpu_pools: tensor-parallel size 4 (the slice's chips) does not divide 14 attention heads; "
        "expected a slice whose chips divide the heads, got 'v6e 2x2'",
        [(f"{NS}:tpu_pools.one", {"topology": "1x1", "zones": ["us-east5-b"]}), (f"{NS}:workloads.t", qwen_on_tpu("one"))],
    ),
    (
        "a TPU vLLM server with more replicas than its pool has slices",
        [
            (f"{NS}:tpu_pools.one", {"topology": "1x1", "zones": ["us-east5-b"]}),
            (f"{NS}:workloads.t", qwen_on_tpu("one") | {"replicas": 3}),
        ],
        f"{NS}:workloads.t.replicas: 3 replica(s) need as many slices but tpu_pools.one holds 1; expected <= 1, got 3",
        [
            (f"{NS}:tpu_pools.one", {"topology": "1x1", "zones": ["us-east5-b"], "slices": 3}),
            (f"{NS}:workloads.t", qwen_on_tpu("one") | {"replicas": 3}),
        ],
    ),
    (
        "a JetStream workload without a batch size per chip",
        [(f"{NS}:workloads.big.per_device_batch_size", None)],
        f"{NS}:workloads.big.per_device_batch_size: jetstream-pathways needs a batch size per chip; expected a positive "
        "integer, got nothing",
        [(f"{NS}:workloads.big.per_device_batch_size", 1)],
    ),
    (
        "a gateway without the HTTP load balancing add-on",
        [(f"{NS}:gateway", {"enabled": True}), (f"{NS}:cluster.http_load_balancing", False)],
        f"{NS}:cluster.http_load_balancing: the GKE Gateway controller needs the HTTP load balancing add-on; expected "
        "true, got false",
        [(f"{NS}:gateway", {"enabled": True}), (f"{NS}:cluster.http_load_balancing", True)],
    ),
]


@pytest.mark.parametrize(("bad", "line", "good"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_the_check_fires_on_its_bad_input_and_not_on_the_nearest_good_one(
    bad: list[tuple[str, Any]], line: str, good: list[tuple[str, Any]]
) -> None:
    (found,) = problems(with_changes(bad))
    assert found.startswith(line)
    load_config(with_changes(good), stack="test")


def test_a_stack_name_gcp_would_refuse_fires_and_a_good_one_does_not() -> None:
    assert problems(BASE, stack="Bad_Stack") == [
        "stack name: the stack name is part of every GCP resource's name (`<cluster.name>-<stack>`, the model bucket); "
        "expected lowercase letters, digits and '-', starting with a letter, not ending with '-', got 'Bad_Stack'"
    ]
    load_config(BASE, stack="bad-stack-fixed")


def test_tensor_parallelism_must_split_the_kv_heads_as_well_as_the_query_heads(catalog: Catalog) -> None:
    """vLLM gives each rank whole KV heads, or replicates each over TP / kv_heads ranks: a TP degree that divides the
    query heads but neither divides nor is a multiple of the KV heads is refused. No catalog model has such a degree
    (their KV heads are powers of two), so the model here is the 8B one with 12 query and 8 KV heads."""
    model = catalog.models["llama-3.1-8b"].model_copy(update={"q_heads": 12, "kv_heads": 8})
    assert model.q_heads % 6 == 0 and model.kv_heads % 6 and 6 % model.kv_heads
    assert not sizing.valid_tensor_parallel(model, 6)
    assert sizing.valid_tensor_parallel(model, 4)  # divides both
    wide = model.model_copy(update={"q_heads": 16, "kv_heads": 4})
    assert sizing.valid_tensor_parallel(wide, 8)  # a multiple of the KV heads: each is replicated on two ranks


# ------------------------------------------------------------------------------------------------ coverage


MUTMUT_NAME = re.compile(r"x_(?P<name>\w+?)__mutmut_(?:orig|\d+)")
"""What mutmut (make mutate) renames a function to in its copy: the original and each mutant of `name`."""


def unmutated(function: str) -> str:
    """A function's name in the source, also when this runs over mutmut's copy of it."""
    match = MUTMUT_NAME.fullmatch(function)
    return match["name"] if match else function


def check_functions() -> set[tuple[str, str]]:
    """(module, function) of every function in infra/config/checks that reports a problem (ctx.add or ctx.advise)."""
    found = set()
    for path in sorted((REPO / "infra" / "config" / "checks").glob("*.py")):
        for fn in ast.parse(path.read_text()).body:
            calls = [n for n in ast.walk(fn) if isinstance(n, ast.Call) and isinstance(n.func, ast.Attribute)]
            if isinstance(fn, ast.FunctionDef) and any(
                c.func.attr in ("add", "advise") and getattr(c.func.value, "id", None) == "ctx" for c in calls
            ):
                found.add((path.name, unmutated(fn.name)))
    return found


def bad_inputs() -> Iterator[tuple[dict[str, Any], str]]:
    """Every bad input of the suite's tables (raw config, stack name), and the few built by the tests that own them."""
    yield from ((mutate(BASE, path, value), "test") for _, path, value, _ in test_config.BAD_INPUTS)
    for table in (test_inputs.IGNORED_KEYS, test_inputs.BAD_NAMES, test_inputs.BAD_NUMBERS):
        yield from ((raw, "test") for _, raw, _ in table)
    yield from ((with_changes(changes), "test") for _, changes, _ in BAD_GATEWAYS)
    yield from ((with_changes(case[1]), "test") for case in CASES)
    yield from ((with_changes(changes), "t") for _, changes, _ in BAD_MONITORING)
    yield four_exposed_vllm_servers(max_nodes_per_zone=1), "test"
    yield shared_pathways_pool(), "test"
    one_chip = mutate(BASE, f"{NS}:tpu_pools.one", {"topology": "1x1", "zones": ["us-east5-b"]})
    server = {"engine": "vllm", "model": "llama-3.1-8b", "tpu_pools": ["one"], "max_context": 4096, "max_num_seqs": 64}
    yield mutate(one_chip, f"{NS}:workloads.t1", server), "test"
    yield BASE, "Bad_Stack"


def fired_by(
    monkeypatch: pytest.MonkeyPatch, inputs: Iterator[tuple[dict[str, Any], str]], advisories: bool
) -> set[tuple[str, str]]:
    """The check functions that reported a problem (and, with `advisories`, an advisory) on any of the inputs."""
    fired: set[tuple[str, str]] = set()

    def recording(method: Any) -> Any:
        def record(self: CheckContext, *args: Any) -> None:
            caller = sys._getframe(1).f_code
            fired.add((Path(caller.co_filename).name, unmutated(caller.co_name)))
            method(self, *args)

        return record

    monkeypatch.setattr(CheckContext, "add", recording(CheckContext.add))
    if advisories:
        monkeypatch.setattr(CheckContext, "advise", recording(CheckContext.advise))
    for raw, stack in inputs:
        with contextlib.suppress(ConfigError):
            load_config(raw, stack=stack)
    return fired


def test_every_check_function_fires_on_a_bad_input_and_on_no_good_stack(monkeypatch: pytest.MonkeyPatch) -> None:
    functions = check_functions()
    assert len(functions) > 30
    assert fired_by(monkeypatch, bad_inputs(), advisories=True) >= functions
    shipped = [(yaml.safe_load((STACKS / f"Pulumi.{env}.yaml").read_text())["config"], env) for env in ENVIRONMENTS]
    good = [(BASE, "test"), *shipped]
    assert fired_by(monkeypatch, iter(good), advisories=False) == set()
