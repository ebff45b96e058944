"""Config checks that no other test made fire (found by mutation testing, issue #21): each bad input gives exactly its
line, and the nearest good input loads.

Compute classes (one per pool, a pool that exists, a ladder whose reservation rung has a reservation, distinct rungs,
spot last); a reservation named on a pool that does not consume it; objectives on a workload the gateway does not
expose; a tensor-parallel degree that splits the query heads but not the KV heads.
"""

from __future__ import annotations

from typing import Any

import pytest
from conftest import BASE, mutate
from test_config import problems

from infra import sizing
from infra.catalog import Catalog
from infra.config import load_config

NS = "gke-inference"
CLASSES = f"{NS}:compute_classes"


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
]


@pytest.mark.parametrize(("bad", "line", "good"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_the_check_fires_on_its_bad_input_and_not_on_the_nearest_good_one(
    bad: list[tuple[str, Any]], line: str, good: list[tuple[str, Any]]
) -> None:
    assert problems(with_changes(bad)) == [line]
    load_config(with_changes(good), stack="test")


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
