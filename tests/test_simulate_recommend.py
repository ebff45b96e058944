"""The settings search (infra/simulate/recommend.py): always the cheapest setting meeting the objective, or the
closest one with what blocks the objective named as an action."""

from __future__ import annotations

import re
from dataclasses import replace
from typing import Any

import pytest
from conftest import STACKS

from infra.catalog import Catalog
from infra.config import StackConfig, Workload
from infra.simulate import parallel
from infra.simulate.capacity import replica_capacity
from infra.simulate.engine import metric_kind
from infra.simulate.hpa import HpaSpec
from infra.simulate.parallel import Task, run_all
from infra.simulate.recommend import (
    Recommendation,
    Score,
    Setting,
    grid,
    lines,
    metrics_of,
    pool_ceiling,
    recommendation,
    search,
)
from infra.simulate.run import SLO_TARGET, autoscaled, hpa_of, replica_rps, run_case, trace_for
from infra.simulate.traces import builtin
from infra.tooling.plan import StackFile
from infra.tooling.plan import run as plan_run


def _stack(name: str) -> tuple[StackConfig, list[dict[str, Any]]]:
    capture = plan_run(StackFile.read(STACKS / f"Pulumi.{name}.yaml"))
    return capture.config, [r.as_json() for r in capture.resources]


@pytest.fixture(scope="module")
def staging() -> tuple[StackConfig, Workload, HpaSpec]:
    cfg, resources = _stack("staging")
    workload = cfg.workloads["gemma-9b"]
    hpa = hpa_of(resources, workload)
    assert hpa is not None
    return cfg, workload, hpa


@pytest.fixture(scope="module")
def capped(staging: tuple[StackConfig, Workload, HpaSpec], catalog: Catalog) -> Recommendation:
    """A slow ramp to 1.5x what the pool's ceiling serves: the HPA keeps up, the pool does not."""
    cfg, workload, hpa = staging
    hours = 1.0
    base = 1.5 * pool_ceiling(cfg, catalog, workload) * replica_rps(replica_capacity(catalog, workload)) / 2
    ramp = builtin("ramp", duration_s=int(hours * 3600), base_rps=base, seed=3, prompt=(512, 64), output=(256, 32))
    return search(cfg, catalog, workload, hpa, {"ramp": ramp}, hours)


def test_the_pool_ceiling_packs_the_replicas_as_the_capacity_check_does(
    staging: tuple[StackConfig, Workload, HpaSpec], catalog: Catalog
) -> None:
    cfg, workload, hpa = staging
    pool = workload.gpu_pool
    assert pool is not None and (pool.gpus_per_vm, workload.gpus) == (2, 2)  # stacks/Pulumi.staging.yaml: one replica a node
    # llama-8b-triton's 2 replicas of one L4 each share one node of the pool's 3 x 2 zones; gemma-9b has the rest.
    assert pool_ceiling(cfg, catalog, workload) == pool.config.max_nodes_per_zone * len(pool.zones) - 1 == 5
    assert pool_ceiling(cfg, catalog, workload) >= hpa.max_replicas


def test_a_workload_the_pool_caps_gets_the_pool_action(
    staging: tuple[StackConfig, Workload, HpaSpec], capped: Recommendation, catalog: Catalog
) -> None:
    cfg, workload, _ = staging
    ceiling = pool_ceiling(cfg, catalog, workload)
    assert capped.kind == "closest" and capped.ceiling == ceiling
    assert capped.best.setting.hpa.max_replicas == ceiling  # the search went past the rendered max, up to the pool
    pool = [b for b in capped.blockers if b.kind == "pool"]
    assert len(pool) == 1
    m = re.fullmatch(
        r"gpu_pools\.l4x2\.max_nodes_per_zone 3 → (\d+) lets max_replicas reach (\d+) \(worst trace (.*)%\)", pool[0].action
    )
    assert m, pool[0].action
    nodes, replicas = int(m[1]), int(m[2])
    assert replicas > ceiling and nodes * 2 >= replicas + 1  # two zones, one replica a node, one node for Triton
    assert float(m[3]) >= SLO_TARGET * 100


def test_a_better_metric_is_named(
    staging: tuple[StackConfig, Workload, HpaSpec], capped: Recommendation, catalog: Catalog
) -> None:
    _, workload, _ = staging
    metric = [b for b in capped.blockers if b.kind == "metric"]
    assert len(metric) == 1
    better = capped.best.setting.metric
    assert better != workload.metric and better in catalog.metrics[workload.config.engine].scalable
    assert metric_kind(better) != metric_kind(workload.metric)
    assert f"autoscaling.metric {better}" in metric[0].action
    assert capped.best.worst > capped.current.worst


def test_a_workload_the_grid_satisfies_gets_the_cheapest_setting(
    staging: tuple[StackConfig, Workload, HpaSpec], catalog: Catalog
) -> None:
    cfg, workload, hpa = staging
    hours = 0.5
    rate = 0.1 * replica_rps(replica_capacity(catalog, workload))
    light = builtin("steady", duration_s=int(hours * 3600), base_rps=rate, seed=5, prompt=(256, 64), output=(64, 16))
    rec = search(cfg, catalog, workload, hpa, {"light": light}, hours)
    assert rec == search(cfg, catalog, workload, hpa, {"light": light}, hours)  # deterministic
    assert rec.kind == "meets" and rec.blockers == ()
    assert rec.best.worst >= SLO_TARGET
    assert rec.best.cost <= rec.current.cost + 1e-9
    best = rec.best.setting
    assert best.hpa.min_replicas == 1  # the light trace needs no second replica: the lowest floor is the cheapest
    assert dict(rec.best.results)["light"] == run_case(cfg, catalog, workload, best.hpa, light, hours, best.metric)
    if best.hpa.max_replicas > best.hpa.min_replicas:  # max_replicas bisected down to the lowest that meets
        lower = replace(best.hpa, max_replicas=best.hpa.max_replicas - 1)
        assert run_case(cfg, catalog, workload, lower, light, hours, best.metric).slo_share < SLO_TARGET
    assert lines(rec, workload)[0].startswith("meets the objective with ")


def test_metrics_are_the_engines_one_per_quantity(staging: tuple[StackConfig, Workload, HpaSpec], catalog: Catalog) -> None:
    _, workload, _ = staging
    metrics = metrics_of(catalog, workload)
    assert metrics[0] == workload.metric
    assert set(metrics) <= set(catalog.metrics[workload.config.engine].scalable)
    assert len({metric_kind(m) for m in metrics}) == len(metrics) == 3  # vLLM: waiting, running, KV cache


@pytest.mark.parametrize("stack", ["dev", "prod"])
def test_every_shipped_autoscaled_workload_gets_a_recommendation(stack: str, catalog: Catalog) -> None:
    cfg, resources = _stack(stack)
    found = 0
    for workload, hpa in autoscaled(cfg, resources):
        found += 1
        rec = recommendation(cfg, catalog, workload, hpa, 0.25)
        assert rec.current.setting == Setting(workload.metric, hpa)
        assert rec.best.rank() <= rec.current.rank()  # never worse than the current setting
        for _, r in rec.current.results:  # misses: served late or never, some of them while replicas start
            assert 0 <= r.missed_scaling <= r.missed <= r.requests
            assert r.slo_share == pytest.approx(1 - r.missed / r.requests, abs=0.02)
        if rec.kind == "meets":
            assert rec.blockers == () and rec.best.worst >= SLO_TARGET
        else:
            assert rec.blockers and {b.kind for b in rec.blockers} <= {"pool", "start", "metric", "replica"}
            assert all(b.action for b in rec.blockers)
            assert rec.best.worst >= rec.current.worst
        text = lines(rec, workload)
        assert f"{rec.current.worst:.1%}" in text[0] and f"{rec.best.worst:.1%}" in text[0]
    assert found


@pytest.mark.parametrize("shape", ["burst", "steady"])
def test_the_pruned_search_finds_what_scoring_the_whole_grid_finds(
    staging: tuple[StackConfig, Workload, HpaSpec], catalog: Catalog, shape: str
) -> None:
    """Settings that can no longer beat the best so far stop early; the best is still the exhaustive scan's (the
    burst: nothing meets, the closest wins as is; steady: the refinement only lowers the cost of the grid's best)."""
    cfg, workload, hpa = staging
    hours = 0.25
    capacity = replica_capacity(catalog, workload)
    trace = trace_for(shape, capacity, hpa, hours)
    top = max(pool_ceiling(cfg, catalog, workload), hpa.max_replicas)
    settings = [Setting(workload.metric, hpa), *grid(workload, hpa, capacity, metrics_of(catalog, workload), top)]
    scores = [Score(x, ((shape, run_case(cfg, catalog, workload, x.hpa, trace, hours, x.metric)),)) for x in settings]
    exhaustive = min(scores, key=Score.rank)
    assert sum(1 for s in scores if s.rank() > exhaustive.rank()) > len(scores) / 2  # most settings could stop early
    rec = search(cfg, catalog, workload, hpa, {shape: trace}, hours)
    if shape == "burst":
        assert rec.kind == "closest" and rec.best == exhaustive
    else:
        assert rec.kind == "meets" and exhaustive.meets and rec.best.rank() <= exhaustive.rank()


def test_workers_give_what_this_process_gives(catalog: Catalog) -> None:
    cfg, resources = _stack("prod")
    tasks = [Task(cfg, catalog, w.name, hpa, ("burst", "steady"), None, 0.1, 0.1) for w, hpa in autoscaled(cfg, resources)]
    shown: list[tuple[str, str]] = []

    class Shown:
        def __init__(self, workload: str) -> None:
            self.workload = workload

        def phase(self, name: str, steps: int) -> None:
            shown.append((self.workload, name))

        def step(self) -> None:
            pass

        def done(self) -> None:
            shown.append((self.workload, "done"))

    with parallel.Workers() as on:
        spread = run_all(tasks, Shown, on)
    from_workers, shown[:] = list(shown), []
    assert run_all(tasks, Shown) == spread
    assert from_workers == shown  # each workload's phases, the searches' included, in order
    assert [w for w, phase in shown if phase == "search"] == [t.workload for t in tasks]


def test_one_core_gets_no_workers(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(parallel.os, "cpu_count", lambda: 1)
    assert parallel.workers() is None


def test_a_setting_whose_floor_is_its_ceiling_runs_alike_whatever_it_reads(
    staging: tuple[StackConfig, Workload, HpaSpec], catalog: Catalog
) -> None:
    """The search scores such settings once (recommend._alike): the HPA never resizes, so the metric, the target and
    the window change nothing; a floor below the ceiling does scale, so there they matter."""
    cfg, workload, hpa = staging
    hours = 0.25
    trace = trace_for("burst", replica_capacity(catalog, workload), hpa, hours)
    fixed = replace(hpa, min_replicas=2, max_replicas=2)
    variants = [(fixed, workload.metric), (replace(fixed, target=fixed.target * 4), workload.metric)]
    variants += [
        (replace(fixed, scale_down=replace(fixed.scale_down, stabilization_s=60)), m) for m in metrics_of(catalog, workload)
    ]
    results = {run_case(cfg, catalog, workload, h, trace, hours, m) for h, m in variants}
    assert len(results) == 1
    scaling = replace(fixed, min_replicas=1)
    assert run_case(cfg, catalog, workload, scaling, trace, hours) != run_case(
        cfg, catalog, workload, replace(scaling, target=scaling.target * 4), trace, hours
    )
