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

import heapq
import math
from bisect import bisect_right
from collections import deque
from dataclasses import dataclass, field
from typing import Literal

from infra.simulate.capacity import ReplicaCapacity
from infra.simulate.hpa import HpaController, HpaSpec
from infra.simulate.traces import Request


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


@dataclass
class _Replica:
    ready_at: float
    waiting: deque[Request] = field(default_factory=deque)
    finish: list[tuple[int, int, int]] = field(default_factory=list)
    """Heap of (emitted-token count at which a sequence finishes, its prompt tokens, the count when it joined)."""
    emitted: int = 0
    """Decode steps so far: each emitted one token for every running sequence."""
    context: int = 0
    """Tokens in the KV cache of the running sequences."""
    carry: float = 0.0
    """Time left over (or owed, after a long prefill) from the previous step."""

    @property
    def running(self) -> int:
        return len(self.finish)

    def load(self) -> int:
        return len(self.waiting) + self.running


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


@dataclass
class _Tokens:
    """Tokens every replica has produced so far: what the engines' token counters count."""

    output: int = 0
    prompt: int = 0

    def of(self, kind: MetricKind) -> int:
        return self.output if kind == "output_tokens_rate" else self.prompt


def _gauge(kind: MetricKind, ready: list[_Replica], queue: int, concurrency: int) -> float:
    """The per-replica average the HPA reads. KV-cache use is approximated by the share of batch slots in use."""
    if kind == "waiting":
        return queue / max(1, len(ready))
    running = sum(r.running for r in ready) / max(1, len(ready))
    if kind == "running":
        return running
    return running / concurrency * (100.0 if kind == "slots_percent" else 1.0)


def _percentile(sorted_values: list[float], q: float) -> float:
    if not sorted_values:
        return 0.0
    return sorted_values[min(len(sorted_values) - 1, max(0, math.ceil(q * len(sorted_values)) - 1))]


def simulate(
    capacity: ReplicaCapacity,
    hpa: HpaSpec | None,
    timing: Timing,
    trace: list[Request],
    *,
    duration_s: int,
    slo_ttft_s: float,
    hourly_per_replica: float,
    replicas: int | None = None,
    dt: float = 1.0,
    metric: MetricKind = "waiting",
) -> Result:
    """Run `trace` for `duration_s`; with no HPA the replica count stays at `replicas`. `metric` is what the HPA's
    gauge measures per ready replica: queued requests, running requests, or the share of the batch in use."""
    controller = HpaController(hpa) if hpa else None
    start_count = hpa.min_replicas if hpa else (replicas or 1)
    pool = [_Replica(ready_at=0.0) for _ in range(start_count)]
    backlog: deque[Request] = deque()
    ttfts: list[float] = []
    late: list[float] = []
    """Arrival times of the requests served after the objective."""
    scaling = bytearray(int(duration_s / dt) + 1)
    lookback = int((timing.metric_delay_s + sync_of(hpa)) / dt)
    samples_t: list[float] = []
    samples_v: list[float] = []
    counted: list[int] = []
    """The token counter at each sample (rate metrics)."""
    tokens = _Tokens()
    rated = kind_is_rate(metric)
    series: list[Point] = []
    arrivals = sorted(trace, key=lambda r: r.arrival_s)
    next_arrival, minute_arrivals = 0, 0
    replica_seconds, peak_queue = 0.0, 0
    sync = hpa.sync_s if hpa else 0
    steps = int(duration_s / dt)
    for step in range(steps):
        now = step * dt
        ready = [r for r in pool if r.ready_at <= now]
        while next_arrival < len(arrivals) and arrivals[next_arrival].arrival_s < now + dt:
            request = arrivals[next_arrival]
            next_arrival += 1
            minute_arrivals += 1
            if ready:
                min(ready, key=_Replica.load).waiting.append(request)
            else:
                backlog.append(request)
        while backlog and ready:
            min(ready, key=_Replica.load).waiting.append(backlog.popleft())
        for replica in ready:
            _serve(replica, capacity, now, dt, ttfts, tokens, late, slo_ttft_s)
        queue = len(backlog) + sum(len(r.waiting) for r in pool)
        peak_queue = max(peak_queue, queue)
        replica_seconds += len(pool) * dt
        if step % max(1, int(timing.scrape_s / dt)) == 0:
            samples_t.append(now)
            if rated:
                counted.append(tokens.of(metric))
                since = bisect_right(samples_t, now - RATE_ALIGNMENT_S) - 1
                t0, c0 = (samples_t[since], counted[since]) if since >= 0 else (samples_t[0], counted[0])
                rate = (counted[-1] - c0) / (now - t0) if now > t0 else 0.0
                samples_v.append(rate / max(1, len(ready)))
            else:
                samples_v.append(_gauge(metric, ready, queue, capacity.max_concurrency))
        if controller and step % max(1, int(sync / dt)) == 0:
            seen = bisect_right(samples_t, now - timing.metric_delay_s) - 1
            observed = samples_v[seen] if seen >= 0 else None
            desired = controller.step(now, len(pool), observed)
            before = len(pool)
            _resize(pool, backlog, desired, now, timing)
            if len(pool) > before:
                until = min(len(scaling), int(max(r.ready_at for r in pool) / dt) + 1)
                scaling[max(0, step - lookback) : until] = b"\x01" * (until - max(0, step - lookback))
        if step % max(1, int(60 / dt)) == 0:
            series.append(Point(now, len(ready), len(pool), queue, minute_arrivals))
            minute_arrivals = 0
    ordered = sorted(ttfts)
    waiting = [r.arrival_s for r in backlog] + [r.arrival_s for p in pool for r in p.waiting]
    missed_at = late + waiting
    return Result(
        requests=len(arrivals),
        served=len(ttfts),
        ttft_p50_s=_percentile(ordered, 0.50),
        ttft_p95_s=_percentile(ordered, 0.95),
        # A request still waiting at the end missed its objective.
        slo_share=sum(1 for t in ttfts if t <= slo_ttft_s) / max(1, next_arrival),
        peak_queue=peak_queue,
        replica_hours=replica_seconds / 3600,
        cost_usd=replica_seconds / 3600 * hourly_per_replica,
        scale_events=len(controller.events) if controller else 0,
        series=tuple(series),
        missed=len(missed_at),
        missed_scaling=sum(1 for t in missed_at if scaling[min(len(scaling) - 1, int(t / dt))]),
    )


def sync_of(hpa: HpaSpec | None) -> float:
    return float(hpa.sync_s) if hpa else 0.0


def kind_is_rate(kind: MetricKind) -> bool:
    return kind in ("output_tokens_rate", "prompt_tokens_rate")


def _serve(
    replica: _Replica,
    capacity: ReplicaCapacity,
    now: float,
    dt: float,
    ttfts: list[float],
    tokens: _Tokens,
    late: list[float],
    slo_ttft_s: float,
) -> None:
    """One step of continuous batching: sequences join whenever a slot is free (each paying its prefill), and decode
    runs in between, one token per running sequence per step of the capacity model."""
    budget = dt + replica.carry
    spent = 0.0
    while True:
        while replica.finish and replica.finish[0][0] <= replica.emitted:
            done, prompt, joined = heapq.heappop(replica.finish)
            replica.context -= prompt + (done - joined)
        while replica.waiting and replica.running < capacity.max_concurrency and budget > 0:
            request = replica.waiting.popleft()
            prefill = capacity.prefill_s(request.prompt_tokens)
            budget -= prefill
            spent += prefill
            # The first token comes out of the prefill, at this point of the step.
            ttft = max(now, request.arrival_s) + spent - request.arrival_s
            ttfts.append(ttft)
            if ttft > slo_ttft_s:
                late.append(request.arrival_s)
            tokens.prompt += request.prompt_tokens
            tokens.output += 1
            heapq.heappush(
                replica.finish, (replica.emitted + max(0, request.output_tokens - 1), request.prompt_tokens, replica.emitted)
            )
            replica.context += request.prompt_tokens
        if not replica.finish or budget <= 0:
            break
        step = capacity.decode_step_s(replica.running, replica.context)
        # Decode until the next sequence finishes (freeing a slot) or the budget runs out.
        steps = min(replica.finish[0][0] - replica.emitted, int(budget / step))
        if steps <= 0:
            break
        replica.emitted += steps
        replica.context += steps * replica.running
        tokens.output += steps * replica.running
        budget -= steps * step
        spent += steps * step
    # Leftover time carries while sequences run (a step may outlast dt); a debt from a long prefill always carries.
    replica.carry = budget if replica.finish else min(budget, 0.0)


def _resize(pool: list[_Replica], backlog: deque[Request], desired: int, now: float, timing: Timing) -> None:
    """Add replicas that serve after their start time; remove starting ones first, then the least loaded."""
    while len(pool) < desired:
        provision = timing.provision_s if len(pool) >= timing.warm_replicas else 0.0
        pool.append(_Replica(ready_at=now + provision + timing.start_s))
    while len(pool) > desired:
        victim = max(pool, key=lambda r: (r.ready_at, -r.load()))
        pool.remove(victim)
        backlog.extend(victim.waiting)
