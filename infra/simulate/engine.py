"""A fixed-step simulation of one workload's replicas under a traffic trace, driven by its HPA.

Each replica batches continuously (vLLM, JetStream): waiting requests join the running batch up to the
replica's concurrency, each paying its prefill; every decode step emits one token per running sequence
and lasts what the capacity model says for that batch and context. Requests go to the ready replica with
the least work (what the endpoint picker or a Service does, roughly); with none ready they wait in a
backlog. The HPA reads its per-replica metric (a gauge: queue, batch, slots or KV share; or a counter's
per-second rate: tokens) as Managed Prometheus and the metrics adapter deliver it: sampled every scrape
interval, visible after a delay. A new replica
serves only after its start time (node provisioning when no warm node is free, then the predicted image
pull + weight load + warmup). Deterministic: no wall clock, no randomness beyond the trace's seed.
"""

from __future__ import annotations

import math
from bisect import bisect_left, bisect_right
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

from infra.simulate.batching import Replica, Served, serve_for
from infra.simulate.capacity import ReplicaCapacity
from infra.simulate.hpa import HpaController, HpaSpec
from infra.simulate.traces import Request, Trace


@dataclass(frozen=True)
class Timing:
    """When a new replica can serve, and how stale the HPA's metric is."""

    start_s: float
    """Image pull + weight load + warmup: what `plan` predicts for the workload."""
    provision_s: float
    """Creating a node (or a whole TPU slice) when no warm one is free."""
    warm_replicas: int
    """Replicas the pool's minimum nodes hold without provisioning."""
    scrape_s: float
    metric_delay_s: float
    """From a sample to the HPA: the collector's export plus the adapter's read."""


@dataclass(frozen=True)
class Point:
    t_s: float
    ready: int
    total: int
    queue: int
    arrivals: int


@dataclass(frozen=True)
class Result:
    requests: int
    served: int
    ttft_p50_s: float
    ttft_p95_s: float
    slo_share: float
    peak_queue: int
    replica_hours: float
    cost_usd: float
    scale_events: int
    series: tuple[Point, ...]
    """One point per minute: replicas ready and in total, queued requests, arrivals in that minute."""
    missed: int = 0
    """Requests that did not start within the objective (served late, or still waiting at the end)."""
    missed_scaling: int = 0
    """Of them, those that arrived while the HPA was scaling up: from a metric delay plus a sync before a replica
    was added until it served (what min replicas or warm headroom would have absorbed)."""


MetricKind = Literal["waiting", "running", "slots_percent", "kv_fraction", "output_tokens_rate", "prompt_tokens_rate"]
RATE_ALIGNMENT_S = 60.0
"""The metrics adapter serves a counter's rate over its 1-minute alignment period (GoogleCloudPlatform/k8s-stackdriver
@673c7dd8 custom-metrics-stackdriver-adapter/adapter.go:289)."""


def metric_kind(name: str) -> MetricKind:
    """Which quantity an engine metric measures (infra/catalog/metrics.yaml): queue, batch, slots in use (0-100), KV
    cache in use (0-1), or (counters, rated) output or prompt tokens per second."""
    if name.endswith("generation_tokens_total"):
        return "output_tokens_rate"
    if name.endswith("prompt_tokens_total"):
        return "prompt_tokens_rate"
    if name.endswith("num_requests_running"):
        return "running"
    if name.endswith("slots_used_percentage"):
        return "slots_percent"
    if name.endswith("kv_cache_usage_perc"):
        return "kv_fraction"
    return "waiting"


class OutOfBounds(Exception):
    """A bounded run gave up: its SLO share is sure to end below the bound, or its cost above it."""


@dataclass(frozen=True)
class Bounds:
    """What a run must still be able to reach to matter to its caller (the settings search)."""

    slo_share: float = 0.0
    cost_usd: float = math.inf

    def check(self, share_at_most: float, cost_at_least: float) -> None:
        # The margin keeps rounding from giving up on a run that would tie.
        if share_at_most < self.slo_share or cost_at_least > self.cost_usd * (1 + 1e-9):
            raise OutOfBounds


def _gauge(kind: MetricKind, ready: list[Replica], queue: int, capacity: ReplicaCapacity) -> float:
    """The per-replica average the HPA reads. KV-cache use is the share of the KV capacity the running sequences
    hold, or, with no KV bound, the share of batch slots in use."""
    count = max(1, len(ready))
    if kind == "waiting":
        return queue / count
    if kind == "kv_fraction" and capacity.kv_capacity_tokens:
        return sum(r.context for r in ready) / count / capacity.kv_capacity_tokens
    running = sum(r.running() for r in ready) / count
    if kind == "running":
        return running
    return running / capacity.max_concurrency * (100.0 if kind == "slots_percent" else 1.0)


def _percentile(sorted_values: list[float], q: float) -> float:
    if not sorted_values:
        return 0.0
    return sorted_values[min(len(sorted_values) - 1, max(0, math.ceil(q * len(sorted_values)) - 1))]


def _overdue(arrivals: list[float], backlog: deque[int], ready: list[Replica], before: float) -> int:
    """Waiting requests that arrived before `before`: sure to start after the objective (or never)."""
    count = sum(1 for i in backlog if arrivals[i] < before)
    for replica in ready:
        for i in replica.waiting:  # in arrival order: routed as they come
            if arrivals[i] >= before:
                break
            count += 1
    return count


def _route(requests: Iterable[int], ready: list[Replica]) -> None:
    """Each request to the ready replica with the least work (the first of equals)."""
    if len(ready) == 1:
        ready[0].waiting.extend(requests)
        return
    loads = [r.load() for r in ready]
    for i in requests:
        k = loads.index(min(loads))
        ready[k].waiting.append(i)
        loads[k] += 1


def simulate(
    capacity: ReplicaCapacity,
    hpa: HpaSpec | None,
    timing: Timing,
    trace: Trace | list[Request],
    *,
    duration_s: int,
    slo_ttft_s: float,
    hourly_per_replica: float,
    replicas: int | None = None,
    dt: float = 1.0,
    metric: MetricKind = "waiting",
    within: Bounds | None = None,
) -> Result:
    """Run `trace` for `duration_s`; with no HPA the replica count stays at `replicas`. `metric` is what the HPA's
    gauge measures per ready replica: queued requests, running requests, or the share of the batch in use.

    With `within`, raise :class:`OutOfBounds` as soon as the result is sure to fall outside them."""
    requests = trace if isinstance(trace, Trace) else Trace.of(trace)
    served = Served(requests, slo_ttft_s)
    serve = serve_for(capacity, served, dt)
    controller = HpaController(hpa) if hpa else None
    start_count = hpa.min_replicas if hpa else (replicas or 1)
    pool = [Replica(ready_at=0.0) for _ in range(start_count)]
    ready: list[Replica] = []
    changed = True
    """The pool changed (or a replica got ready) since `ready` was taken."""
    next_ready = 0.0
    backlog: deque[int] = deque()
    scaling = bytearray(int(duration_s / dt) + 1)
    lookback = int((timing.metric_delay_s + sync_of(hpa)) / dt)
    samples_t: list[float] = []
    samples_v: list[float] = []
    counted: list[int] = []
    """The token counter at each sample (rate metrics)."""
    rated = kind_is_rate(metric)
    series: list[Point] = []
    arrivals = requests.arrival_s
    next_arrival, minute_arrivals = 0, 0
    replica_seconds, peak_queue = 0.0, 0
    sync = hpa.sync_s if hpa else 0
    scrape_every, sync_every, minute = max(1, int(timing.scrape_s / dt)), max(1, int(sync / dt)), max(1, int(60 / dt))
    steps = int(duration_s / dt)
    counted_arrivals = bisect_left(arrivals, (steps - 1) * dt + dt) if steps else 0
    """The slo_share's denominator: what arrives before the last step ends."""
    for step in range(steps):
        now = step * dt
        if changed or next_ready <= now:
            ready = [r for r in pool if r.ready_at <= now]
            next_ready = min((r.ready_at for r in pool if r.ready_at > now), default=math.inf)
            changed = False
        end = now + dt
        if next_arrival < len(arrivals) and arrivals[next_arrival] < end:
            last = bisect_left(arrivals, end, next_arrival)
            minute_arrivals += last - next_arrival
            if ready:
                _route(range(next_arrival, last), ready)
            else:
                backlog.extend(range(next_arrival, last))
            next_arrival = last
        if backlog and ready:
            _route(backlog, ready)
            backlog.clear()
        queue = len(backlog)
        for replica in ready:
            if replica.waiting or replica.finish or replica.pending:
                serve(replica, now)
                queue += len(replica.waiting)
            else:
                replica.carry = min(dt + replica.carry, 0.0)
        peak_queue = max(peak_queue, queue)
        replica_seconds += len(pool) * dt
        if within and step % scrape_every == 0:
            missed = len(served.late) + _overdue(arrivals, backlog, ready, end - slo_ttft_s)
            floor = (hpa.min_replicas if hpa else len(pool)) * (steps - step - 1) * dt
            within.check(1 - missed / max(1, counted_arrivals), (replica_seconds + floor) / 3600 * hourly_per_replica)
        if step % scrape_every == 0:
            samples_t.append(now)
            if rated:
                counted.append(served.output_tokens if metric == "output_tokens_rate" else served.prompt_tokens)
                since = bisect_right(samples_t, now - RATE_ALIGNMENT_S) - 1
                t0, c0 = (samples_t[since], counted[since]) if since >= 0 else (samples_t[0], counted[0])
                rate = (counted[-1] - c0) / (now - t0) if now > t0 else 0.0
                samples_v.append(rate / max(1, len(ready)))
            else:
                samples_v.append(_gauge(metric, ready, queue, capacity))
        if step % minute == 0:  # before the HPA resizes: ready and total of one pool
            series.append(Point(now, len(ready), len(pool), queue, minute_arrivals))
            minute_arrivals = 0
        if controller and step % sync_every == 0:
            seen = bisect_right(samples_t, now - timing.metric_delay_s) - 1
            observed = samples_v[seen] if seen >= 0 else None
            desired = controller.step(now, len(pool), observed)
            if desired != len(pool):
                before = len(pool)
                _resize(pool, backlog, desired, now, timing)
                changed = True
                if len(pool) > before:
                    until = min(len(scaling), int(max(r.ready_at for r in pool) / dt) + 1)
                    scaling[max(0, step - lookback) : until] = b"\x01" * (until - max(0, step - lookback))
    ttfts, late = served.ttfts, served.late
    ordered = sorted(ttfts)
    missed_at = late + [arrivals[i] for i in backlog] + [arrivals[i] for p in pool for i in p.waiting]
    result = Result(
        requests=len(arrivals),
        served=len(ttfts),
        ttft_p50_s=_percentile(ordered, 0.50),
        ttft_p95_s=_percentile(ordered, 0.95),
        # A request still waiting at the end missed its objective.
        slo_share=(len(ttfts) - len(late)) / max(1, next_arrival),
        peak_queue=peak_queue,
        replica_hours=replica_seconds / 3600,
        cost_usd=replica_seconds / 3600 * hourly_per_replica,
        scale_events=len(controller.events) if controller else 0,
        series=tuple(series),
        missed=len(missed_at),
        missed_scaling=sum(1 for t in missed_at if scaling[min(len(scaling) - 1, int(t / dt))]),
    )
    if within:
        within.check(result.slo_share, result.cost_usd)
    return result


def sync_of(hpa: HpaSpec | None) -> float:
    return float(hpa.sync_s) if hpa else 0.0


def kind_is_rate(kind: MetricKind) -> bool:
    return kind in ("output_tokens_rate", "prompt_tokens_rate")


def _resize(pool: list[Replica], backlog: deque[int], desired: int, now: float, timing: Timing) -> None:
    """Add replicas that serve after their start time; remove starting ones first, then the least loaded."""
    while len(pool) < desired:
        provision = timing.provision_s if len(pool) >= timing.warm_replicas else 0.0
        pool.append(Replica(ready_at=now + provision + timing.start_s))
    while len(pool) > desired:
        victim = max(pool, key=lambda r: (r.ready_at, -r.load()))
        pool.remove(victim)
        backlog.extend(victim.waiting)
