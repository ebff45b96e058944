"""The settings search behind `simulate`'s recommendation: always the cheapest setting that meets the objective, or
the closest one with what blocks the objective, named as an action.

The search covers the engine's metrics (infra/catalog/metrics.yaml, one per quantity the simulator tells apart:
``engine.metric_kind``), a few targets and minimum replicas around the rendered ones, and `max_replicas` up to what
the workload's pools allow (``pool_ceiling``), not only the rendered value. The scale-down window is refined on the
best point only, and `max_replicas` (more never lowers the SLO share) is bisected, so the cost stays bounded: about
30 settings per workload, each on two traces. Deterministic: the traces are seeded, ties keep the grid's order.

Kinds of blockers, in the order they are named:
- ``pool``: with the pool raised, `max_replicas` reaches the objective: the pool change that lifts the ceiling;
- ``start``: most of the current setting's misses arrive while replicas start: min replicas or warm nodes;
- ``metric``: another metric of the engine scores better than any setting of the current one;
- ``replica``: none of these reaches it: the replica itself is too slow for the traffic or the objective.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from typing import Literal, Protocol

from infra import sizing
from infra.catalog import Catalog
from infra.config import StackConfig, Workload
from infra.config.checks.workloads import max_replicas as configured_max
from infra.simulate.capacity import ReplicaCapacity, replica_capacity
from infra.simulate.engine import Bounds, MetricKind, Result, metric_kind
from infra.simulate.hpa import HpaSpec
from infra.simulate.run import OUTPUT, PROMPT, SLO_TARGET, Case, Job, case_of, replica_rps, trace_for
from infra.simulate.traces import Trace

CURRENT_FACTORS = (0.5, 1.0, 2.0)
"""Around the rendered target, on the rendered metric."""
OTHER_FACTORS = (0.5, 1.0, 1.5)
"""Around ``base_target`` on another metric."""
WINDOWS = (60, 300, 900)
START_SHARE = 0.5
"""The current setting misses 'mostly during scale-up' when more than this share of its misses arrive then."""
SEARCH_TRACES = ("diurnal", "burst")


@dataclass(frozen=True)
class Setting:
    metric: str
    hpa: HpaSpec


@dataclass(frozen=True)
class Score:
    setting: Setting
    results: tuple[tuple[str, Result], ...]

    @property
    def worst(self) -> float:
        """The lowest share of requests within the objective over the traces."""
        return min(r.slo_share for _, r in self.results)

    @property
    def cost(self) -> float:
        return sum(r.cost_usd for _, r in self.results)

    @property
    def meets(self) -> bool:
        return self.worst >= SLO_TARGET

    def rank(self) -> tuple[int, float, float]:
        """Meeting settings first, cheapest first; then the highest worst-trace share, then the cheapest."""
        return (0, 0.0, round(self.cost, 9)) if self.meets else (1, -round(self.worst, 9), round(self.cost, 9))


BlockerKind = Literal["pool", "start", "metric", "replica"]


@dataclass(frozen=True)
class Blocker:
    kind: BlockerKind
    action: str


@dataclass(frozen=True)
class Recommendation:
    workload: str
    current: Score
    best: Score
    ceiling: int
    """The highest `max_replicas` the workload's pools allow next to the other workloads at their maximum."""
    blockers: tuple[Blocker, ...] = ()
    """Empty when ``best`` meets the objective."""

    @property
    def kind(self) -> Literal["meets", "closest"]:
        return "meets" if self.best.meets else "closest"


# ------------------------------------------------------------------------------------------------ the pools


def _gpu_nodes(cfg: StackConfig, catalog: Catalog, workload: Workload, replicas: int, others: bool = True) -> int | None:
    """Nodes of the workload's GPU pool holding `replicas` of it (and, with `others`, every other workload of the pool
    at its maximum), packed as infra/config/checks/capacity.py packs them."""
    pool = workload.gpu_pool
    assert pool is not None
    machine = catalog.machines[pool.config.machine_type]
    pods: list[sizing.Pod] = []
    for w in cfg.workloads.values():
        if w.gpu_pool is None or w.gpu_pool.name != pool.name or (w.name != workload.name and not others):
            continue
        count = replicas if w.name == workload.name else configured_max(w.config)
        nodes = sizing.gpu_parallelism(w.gpus, pool.gpus_per_vm, w.config.tensor_parallel).nodes
        pods += [sizing.gpu_pod(machine, w.gpus, pool.gpus_per_vm)] * (count * nodes)
    return sizing.nodes_for(pods, sizing.Pod(pool.gpus_per_vm, sizing.schedulable(machine)))


def _tpu_slices(cfg: StackConfig, workload: Workload, pool: str, replicas: int) -> int:
    """Slices of `pool` holding `replicas` of the workload and every other workload on it at its maximum."""
    total = 0
    for w in cfg.workloads.values():
        each = sum(1 for p in w.tpu_pools if p.name == pool)
        total += each * (replicas if w.name == workload.name else configured_max(w.config))
    return total


def _largest(fits: Callable[[int], bool]) -> int:
    """The largest n >= 0 with fits(n), fits being true up to some n (doubling, then bisection)."""
    hi = 1
    while fits(hi) and hi < 1 << 12:
        hi *= 2
    lo = hi // 2 if hi > 1 else 0
    while lo + 1 < hi:
        mid = (lo + hi) // 2
        lo, hi = (mid, hi) if fits(mid) else (lo, mid)
    return lo


def pool_ceiling(cfg: StackConfig, catalog: Catalog, workload: Workload) -> int:
    """The highest `max_replicas` the pools allow: GPU pool nodes (max per zone x zones) packed with the replicas'
    pods; TPU pools' maximum slices / slices per replica; the pool's other workloads at their maximum first."""
    if workload.tpu_pools:
        ceilings = []
        for name, pool in {p.name: p for p in workload.tpu_pools}.items():
            each = sum(1 for p in workload.tpu_pools if p.name == name)
            others = _tpu_slices(cfg, workload, name, 0)
            ceilings.append((pool.config.max_slices - others) // each)
        return max(1, min(ceilings))
    gpu = workload.gpu_pool
    assert gpu is not None
    capacity = gpu.config.max_nodes_per_zone * len(gpu.zones)

    def fits(n: int) -> bool:
        nodes = _gpu_nodes(cfg, catalog, workload, n)
        return nodes is not None and nodes <= capacity

    return max(1, _largest(fits))


def pool_action(cfg: StackConfig, catalog: Catalog, workload: Workload, replicas: int) -> str:
    """The pool change that lets `max_replicas` reach `replicas`."""
    if workload.tpu_pools:
        changes = []
        for name, pool in {p.name: p for p in workload.tpu_pools}.items():
            per_pool = pool.config.slices_per_pool[1]
            slices = math.ceil(_tpu_slices(cfg, workload, name, replicas) / per_pool)
            if slices > pool.config.slices:
                changes.append(f"tpu_pools.{name}.slices {pool.config.slices} → {slices}")
        return f"{', '.join(changes)} lets max_replicas reach {replicas}"
    gpu = workload.gpu_pool
    assert gpu is not None
    nodes = _gpu_nodes(cfg, catalog, workload, replicas) or 0
    per_zone = math.ceil(nodes / len(gpu.zones))
    return (
        f"gpu_pools.{gpu.name}.max_nodes_per_zone {gpu.config.max_nodes_per_zone} → {per_zone} lets max_replicas reach {replicas}"
    )


def warm_action(cfg: StackConfig, catalog: Catalog, workload: Workload, replicas: int) -> str | None:
    """The pool minimum that keeps nodes (slices) for `replicas` warm, or None when they already are or cannot be."""
    if workload.tpu_pools:
        pool = workload.tpu_pools[0]
        if not pool.config.autoscaling:
            return None  # a pool that does not autoscale keeps all its slices
        low = math.ceil(replicas * len(workload.tpu_pools) / pool.config.slices)
        if low <= pool.config.autoscaling.min_slices or low > pool.config.autoscaling.max_slices:
            return None
        return f"tpu_pools.{pool.name}.autoscaling.min_slices {pool.config.autoscaling.min_slices} → {low}"
    gpu = workload.gpu_pool
    assert gpu is not None
    nodes = _gpu_nodes(cfg, catalog, workload, replicas, others=False) or 0
    per_zone = math.ceil(nodes / len(gpu.zones))
    if per_zone <= gpu.config.min_nodes_per_zone:
        return None
    return f"gpu_pools.{gpu.name}.min_nodes_per_zone {gpu.config.min_nodes_per_zone} → {per_zone}"


# ------------------------------------------------------------------------------------------------ the search


def metrics_of(catalog: Catalog, workload: Workload) -> list[str]:
    """The workload's metric, then the engine's other gauges and rates, one per quantity the simulator tells apart."""
    names = [workload.metric, *catalog.metrics[workload.config.engine].scalable]
    seen: dict[MetricKind, str] = {}
    for name in names:
        seen.setdefault(metric_kind(name), name)
    return list(seen.values())


def base_target(kind: MetricKind, capacity: ReplicaCapacity) -> float:
    """A middle target for a metric the workload does not scale on yet: half of what one replica holds or does."""
    batch = capacity.max_concurrency
    rps = replica_rps(capacity)
    return {
        "waiting": max(1.0, batch / 2),
        "running": max(1.0, batch / 2),
        "slots_percent": 50.0,
        "kv_fraction": 0.5,
        "output_tokens_rate": round(0.5 * rps * OUTPUT[0], 1),
        "prompt_tokens_rate": round(0.5 * rps * PROMPT[0], 1),
    }[kind]


def grid(workload: Workload, hpa: HpaSpec, capacity: ReplicaCapacity, metrics: list[str], top: int) -> Iterator[Setting]:
    """Metric x target x min replicas, `max_replicas` at `top` (bisected down afterwards), the rendered window."""
    floors = sorted({f for f in (max(1, hpa.min_replicas - 1), hpa.min_replicas, hpa.min_replicas + 1) if f <= top})
    for metric in metrics:
        current = metric == workload.metric
        base = hpa.target if current else base_target(metric_kind(metric), capacity)
        for factor in CURRENT_FACTORS if current else OTHER_FACTORS:
            for floor in floors:
                yield Setting(metric, replace(hpa, target=round(base * factor, 3), min_replicas=floor, max_replicas=top))


def _alike(setting: Setting) -> Setting | int:
    """What a setting's runs depend on: with min_replicas equal to max_replicas the HPA never resizes, so its metric,
    target and windows do not matter and the replica count alone tells the runs apart."""
    hpa = setting.hpa
    return hpa.min_replicas if hpa.min_replicas == hpa.max_replicas else setting


def _bar(incumbent: Score) -> Bounds:
    """What a setting must still be able to reach on every trace to rank before `incumbent` (see Score.rank)."""
    if incumbent.meets:
        return Bounds(SLO_TARGET, incumbent.cost)
    return Bounds(incumbent.worst)


MEETS = Bounds(SLO_TARGET)


class Progress(Protocol):
    """Told what runs: a phase (here "search", "refine", "blockers") of at most `steps` steps (settings), then each step."""

    def phase(self, name: str, steps: int) -> None: ...

    def step(self) -> None: ...


class _Search:
    """Scores settings, each once, on every trace. A score asked with a bar stops (None) as soon as the setting is
    sure to miss it: the traces run worst first (as the current setting ranks them), the first that misses ends it,
    and a run gives up mid-way (engine.Bounds). A setting runs as one it is known to equal (see ``_alike``) ran, and
    a bar at least as strict as one it already missed stops it at once (a score is None exactly when the full score
    falls outside its bar)."""

    def __init__(self, case: Case, traces: dict[str, Trace], hours: float, progress: Progress | None) -> None:
        self.case, self.traces, self.hours, self.progress = case, traces, hours, progress
        self.cache: dict[Setting | int, Score] = {}
        self.missed: dict[Setting | int, list[Bounds]] = {}
        self.order = list(traces)

    def phase(self, name: str, settings: int) -> None:
        if self.progress:
            self.progress.phase(name, settings)

    def score(self, setting: Setting, bar: Bounds | None = None) -> Score | None:
        key = _alike(setting)
        if key in self.cache:
            return replace(self.cache[key], setting=setting)
        if self.progress:
            self.progress.step()
        if bar and any(bar.slo_share >= b.slo_share and bar.cost_usd <= b.cost_usd for b in self.missed.get(key, ())):
            return None
        floor_cost = setting.hpa.min_replicas * self.hours * self.case.hourly_per_replica
        """What a trace costs at least: the minimum replicas all along."""
        results: dict[str, Result] = {}
        spent = 0.0
        for n, name in enumerate(self.order, start=1):
            within = bar and replace(bar, cost_usd=bar.cost_usd - spent - (len(self.order) - n) * floor_cost)
            result = Job(self.case, setting.hpa, self.traces[name], self.hours, setting.metric, within).run()
            if result is None:
                assert bar is not None
                self.missed.setdefault(key, []).append(bar)
                return None
            results[name] = result
            spent += result.cost_usd
        score = Score(setting, tuple((name, results[name]) for name in self.traces))
        self.cache[key] = score
        return score

    def full(self, setting: Setting) -> Score:
        score = self.score(setting)
        assert score is not None  # no bar: never stops
        return score

    def meets(self, setting: Setting) -> bool:
        score = self.score(setting, MEETS)
        return score is not None and score.meets

    def worst_first(self, score: Score) -> None:
        """Run the traces in the order of `score`'s shares, lowest first: a setting short of a bar fails there."""
        shares = dict((name, r.slo_share) for name, r in score.results)
        self.order.sort(key=lambda name: shares[name])

    def lowest(self, setting: Setting, field: Literal["max_replicas", "min_replicas"], low: int, high: int) -> Score | None:
        """The setting with the lowest `field` in [low, high] that meets the objective (bisection: more replicas never
        lower the share), or None when even `high` does not."""

        def at(n: int) -> Setting:
            hpa = setting.hpa
            changed = replace(hpa, max_replicas=n) if field == "max_replicas" else replace(hpa, min_replicas=n)
            return Setting(setting.metric, changed)

        if not self.meets(at(high)):
            return None
        lo, hi = low - 1, high
        while lo + 1 < hi:
            mid = (lo + hi) // 2
            lo, hi = (lo, mid) if self.meets(at(mid)) else (mid, hi)
        return self.full(at(hi))


def search(
    cfg: StackConfig,
    catalog: Catalog,
    workload: Workload,
    hpa: HpaSpec,
    traces: dict[str, Trace],
    hours: float,
    progress: Progress | None = None,
) -> Recommendation:
    """The recommendation for `workload` on `traces` (see the module docstring): the grid's best as an exhaustive scan
    would rank it (the first of equals), each setting run only as far as it can still beat the best so far."""
    case = case_of(cfg, catalog, workload)
    s = _Search(case, traces, hours, progress)
    ceiling = pool_ceiling(cfg, catalog, workload)
    top = max(ceiling, hpa.max_replicas)
    settings = list(grid(workload, hpa, case.capacity, metrics_of(catalog, workload), top))
    s.phase("search", 1 + len(settings))
    current = s.full(Setting(workload.metric, hpa))
    s.worst_first(current)
    best = own = current
    """The best setting, and the best on the workload's own metric (the metric blocker compares them)."""
    for setting in settings:
        mine = setting.metric == workload.metric
        score = s.score(setting, _bar(own if mine else best))
        if score is None:
            continue
        if score.rank() < best.rank():
            best = score
        if mine and score.rank() < own.rank():
            own = score
    if best.meets:
        # The cheapest scale-down window, then the lowest max_replicas that still meets the objective.
        s.phase("refine", len(WINDOWS) + _probes(best.setting.hpa.min_replicas, best.setting.hpa.max_replicas))
        for seconds in WINDOWS:
            window = s.score(Setting(best.setting.metric, _window(best.setting.hpa, seconds)), _bar(best))
            if window is not None and window.rank() < best.rank():
                best = window
        lowered = s.lowest(best.setting, "max_replicas", best.setting.hpa.min_replicas, best.setting.hpa.max_replicas)
        if lowered is not None and lowered.rank() <= best.rank():
            best = lowered
        return Recommendation(workload.name, current, best, ceiling)
    return Recommendation(
        workload.name, current, best, ceiling, tuple(_blockers(s, cfg, catalog, workload, hpa, current, best, own, top))
    )


def _probes(low: int, high: int) -> int:
    """At most how many settings `_Search.lowest` scores on [low, high]."""
    return 2 + max(0, high - low).bit_length()


def _window(hpa: HpaSpec, seconds: int) -> HpaSpec:
    return replace(hpa, scale_down=replace(hpa.scale_down, stabilization_s=seconds))


def _blockers(
    s: _Search,
    cfg: StackConfig,
    catalog: Catalog,
    workload: Workload,
    hpa: HpaSpec,
    current: Score,
    best: Score,
    own: Score,
    top: int,
) -> Iterator[Blocker]:
    named = False
    limit = max(2 * top, top + 4)
    s.phase("blockers", _probes(top + 1, limit) + _probes(hpa.min_replicas + 1, limit) + 1)
    raised = s.lowest(best.setting, "max_replicas", top + 1, limit)
    if raised is not None:
        named = True
        action = pool_action(cfg, catalog, workload, raised.setting.hpa.max_replicas)
        yield Blocker("pool", f"{action} (worst trace {raised.worst:.1%})")
    worst = min((r for _, r in current.results), key=lambda r: r.slo_share)
    if worst.missed and worst.missed_scaling / worst.missed > START_SHARE:
        named = True
        t = s.case.timing
        # The lowest floor that meets the objective, the pool raised if it takes more than the pool holds.
        floor = s.lowest(Setting(workload.metric, replace(hpa, max_replicas=limit)), "min_replicas", hpa.min_replicas + 1, limit)
        replicas = floor.setting.hpa.min_replicas if floor else limit
        reach = f"worst trace {floor.worst:.1%}" if floor else "still short of the objective"
        warm = warm_action(cfg, catalog, workload, replicas)
        text = (
            f"{worst.missed_scaling / worst.missed:.0%} of the misses arrive while replicas start "
            f"({t.start_s:.0f} s, + {t.provision_s:.0f} s beyond {t.warm_replicas} warm); "
            f"min_replicas {hpa.min_replicas} → {replicas} ({reach})"
        )
        if replicas > top:
            text += f", with {pool_action(cfg, catalog, workload, replicas)}"
        yield Blocker("start", text + (f", or warm headroom: {warm}" if warm else ""))
    if best.setting.metric != workload.metric and round(best.worst, 3) > round(own.worst, 3):  # better as printed
        named = True
        yield Blocker(
            "metric",
            f"workloads.{workload.name}.autoscaling.metric {best.setting.metric} (target {best.setting.hpa.target:g}) "
            f"scores {best.worst:.1%} against {own.worst:.1%} on {workload.metric}",
        )
    if not named:
        top_score = s.full(Setting(best.setting.metric, replace(best.setting.hpa, max_replicas=limit)))
        yield Blocker(
            "replica",
            f"even {limit} replicas reach {top_score.worst:.1%}: a faster replica (more GPUs or chips) "
            f"or a looser objective than slo_ttft_s {workload.config.slo_ttft_s:g} s",
        )


def recommendation(
    cfg: StackConfig,
    catalog: Catalog,
    workload: Workload,
    hpa: HpaSpec,
    hours: float,
    progress: Progress | None = None,
) -> Recommendation:
    """The search on the diurnal and burst traces (the shapes that separate settings), over `hours`."""
    capacity = replica_capacity(catalog, workload)
    traces = {name: trace_for(name, capacity, hpa, hours) for name in SEARCH_TRACES}
    return search(cfg, catalog, workload, hpa, traces, hours, progress)


def lines(rec: Recommendation, workload: Workload) -> list[str]:
    """The recommendation in words: the setting, its score next to the current one's, and what blocks the objective."""
    now = f"now {describe(rec.current.setting, workload)}: worst trace {rec.current.worst:.1%}, ${rec.current.cost:,.2f}"
    best = f"{describe(rec.best.setting, workload)}: worst trace {rec.best.worst:.1%}, ${rec.best.cost:,.2f}"
    if rec.kind == "meets":
        return [f"meets the objective with {best} ({now})"]
    return [f"closest {best} ({now}); blocked by:", *(f"{b.kind}: {b.action}" for b in rec.blockers)]


def describe(setting: Setting, workload: Workload) -> str:
    hpa = setting.hpa
    metric = "" if setting.metric == workload.metric else f"metric {setting.metric}, "
    return (
        f"{metric}target {hpa.target:g}, min {hpa.min_replicas}, max {hpa.max_replicas}, "
        f"scale-down window {hpa.scale_down.stabilization_s} s"
    )
