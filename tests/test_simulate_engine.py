"""The autoscaling simulator: relationships that hold whatever the numbers, on a synthetic replica and hand-made traces.

The synthetic replica decodes a step in 20 ms whatever the batch (no KV read), prefills 0.1 ms per prompt token
(50 ms for a 500-token prompt) and batches 8 sequences. Prefills and decode share one timeline, so 8 requests of
500 + 50 tokens take 8 x 50 ms + 50 x 20 ms = 1.4 s: 5.7 requests/s at best; at the default 1 s step a slot freed
mid-step refills only at the next one, which makes it 4/s. The rates below stay clear of both figures.
"""

from __future__ import annotations

import csv
import math
import re
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from conftest import STACKS
from hypothesis import given, settings
from hypothesis import strategies as st

from infra.catalog import Catalog
from infra.config import StackConfig, Workload
from infra.simulate.capacity import ReplicaCapacity, replica_capacity
from infra.simulate.engine import Bounds, MetricKind, OutOfBounds, Point, Result, Timing, simulate
from infra.simulate.hpa import HpaSpec
from infra.simulate.run import (
    hourly_per_replica,
    hpa_of,
    replica_rps,
    run_case,
    timing,
    trace_for,
)
from infra.simulate.traces import Request, builtin
from infra.tooling.cli import main
from infra.tooling.plan import StackFile
from infra.tooling.plan import run as plan_run

DECODE_S = 0.020
PREFILL_PER_TOKEN_S = 1e-4
CAP = ReplicaCapacity(
    weight_bytes=DECODE_S * 1e12,
    kv_bytes_per_token=0.0,
    hbm_bandwidth_Bps=1e12,
    peak_flops=2e13,
    decode_efficiency=1.0,
    prefill_mfu=1.0,
    params=1e9,
    max_concurrency=8,
    kv_capacity_tokens=10**9,
)
PROMPT, OUTPUT = 500, 50
SLO = 0.5
PRICE = 3.0
FAST = Timing(start_s=60.0, provision_s=0.0, warm_replicas=100, scrape_s=15.0, metric_delay_s=30.0)
HPA = HpaSpec(min_replicas=1, max_replicas=5, target=2.0)
FEW = settings(max_examples=6, deadline=None, derandomize=True)


def uniform(rps: float, start_s: float, end_s: float, prompt: int = PROMPT, output: int = OUTPUT) -> list[Request]:
    """Evenly spaced arrivals at `rps` in [start_s, end_s), the first half a gap in, so none sits on a step edge."""
    gap = 1 / rps
    n = int((end_s - start_s) * rps)
    return [Request(start_s + (i + 0.5) * gap, prompt, output) for i in range(n)]


def sim(trace: list[Request], *, hpa: HpaSpec | None = HPA, timing_: Timing = FAST, duration_s: int = 1800, **kw: Any) -> Result:
    return simulate(CAP, hpa, timing_, trace, duration_s=duration_s, slo_ttft_s=SLO, hourly_per_replica=PRICE, **kw)


def first_rise(series: tuple[Point, ...], key: str) -> float:
    """The time of the first point where `key` exceeds its value at the first point."""
    start = getattr(series[0], key)
    return next(p.t_s for p in series if getattr(p, key) > start)


def test_synthetic_replica_is_what_the_module_docstring_says() -> None:
    assert CAP.decode_step_s(1, 0) == pytest.approx(DECODE_S)
    assert CAP.decode_step_s(8, 10_000) == pytest.approx(DECODE_S)
    assert CAP.prefill_s(PROMPT) == pytest.approx(0.05)


# ------------------------------------------------------------------------------------------------ 1. determinism


def test_same_inputs_give_the_same_result_series_included() -> None:
    def once() -> Result:
        trace = builtin("burst", duration_s=1800, base_rps=2.0, seed=7, prompt=(500, 200), output=(50, 20))
        return sim(trace)

    a, b = once(), once()
    assert a == b
    assert a.series == b.series and len(a.series) == 30
    assert a.scale_events > 0  # the run exercised the controller, not just a flat line


# ------------------------------------------------------------------------------------------------ 2. zero traffic


def test_zero_traffic_settles_at_min_replicas() -> None:
    trace = uniform(25.0, 0, 600)  # ~3.3 replicas' worth for 10 min, then 30 min of nothing
    r = sim(trace, duration_s=2400)
    assert max(p.total for p in r.series) > HPA.min_replicas
    assert [p.total for p in r.series[-5:]] == [HPA.min_replicas] * 5
    assert all(p.queue == 0 for p in r.series[-5:])
    assert r.scale_events > 0
    assert all(p.ready <= p.total for p in r.series)  # one pool's counts, taken before a scale-down removes replicas


def test_min_replicas_hold_under_no_traffic_at_all() -> None:
    r = sim([], hpa=replace(HPA, min_replicas=2), duration_s=600)
    assert {p.total for p in r.series} == {p.ready for p in r.series} == {2}
    assert r.scale_events == 0 and r.requests == r.served == 0
    assert r.replica_hours == pytest.approx(2 * 600 / 3600)


# ------------------------------------------------------------------------------------------------ 3. more max_replicas


BURST = builtin("burst", duration_s=1800, base_rps=2.0, seed=3, prompt=(500, 200), output=(50, 20))


FLAP_SHARE = 2e-3
"""The waiting-requests gauge reads 0 while replicas keep up, so the default scale-down (100 % per 15 s after 300 s)
drops to min_replicas near the burst's end and scales back up: when that lands shifts a few requests (about 5 in 10^4
on BURST) either way, so attainment is monotone in max_replicas only to within this share."""


@FEW
@given(st.integers(min_value=1, max_value=6))
def test_more_max_replicas_never_lowers_slo_attainment(max_replicas: int) -> None:
    low = sim(BURST, hpa=replace(HPA, max_replicas=max_replicas))
    high = sim(BURST, hpa=replace(HPA, max_replicas=max_replicas + 1))
    assert high.slo_share >= low.slo_share - FLAP_SHARE
    assert max(p.total for p in low.series) <= max_replicas


def test_max_replicas_matters_on_the_burst() -> None:
    """Guards the property above against a trace too light to need a second replica."""
    assert sim(BURST, hpa=replace(HPA, max_replicas=4)).slo_share > sim(BURST, hpa=replace(HPA, max_replicas=1)).slo_share + 0.05


# ------------------------------------------------------------------------------------------------ 4. higher target


STEADY_OVERLOAD = uniform(10.0, 0, 1800)  # ~2x one replica: the HPA cycles between building and draining a queue
SYNC_SLACK_H = HPA.sync_s * HPA.max_replicas / 3600
"""Which sync tick a decision lands on shifts a cycle by up to one sync period: at most max_replicas x sync_s."""


@FEW
@given(st.floats(min_value=0.5, max_value=30.0), st.floats(min_value=1.05, max_value=4.0))
def test_higher_target_uses_no_more_replica_hours(target: float, factor: float) -> None:
    low = sim(STEADY_OVERLOAD, hpa=replace(HPA, target=target))
    high = sim(STEADY_OVERLOAD, hpa=replace(HPA, target=target * factor))
    assert high.replica_hours <= low.replica_hours + SYNC_SLACK_H


def test_a_target_never_reached_keeps_min_replicas_the_cheapest() -> None:
    never = sim(STEADY_OVERLOAD, hpa=replace(HPA, target=1e6))
    assert never.scale_events == 0 and never.replica_hours == pytest.approx(HPA.min_replicas * 0.5)
    assert all(sim(STEADY_OVERLOAD, hpa=replace(HPA, target=t)).replica_hours > never.replica_hours for t in (1.0, 5.0, 20.0))


@pytest.mark.parametrize(("kind", "per_request"), [("output_tokens_rate", OUTPUT), ("prompt_tokens_rate", PROMPT)])
def test_a_token_rate_metric_is_the_replicas_throughput(kind: MetricKind, per_request: int) -> None:
    """A token counter's rate per replica is what it serves: 2 requests/s (within one replica's capacity) make
    2 x tokens-per-request tokens/s, so a target under that adds replicas and one above it never does."""
    trace = uniform(2.0, 0, 1800)
    served = 2.0 * per_request
    under = sim(trace, hpa=replace(HPA, target=served / 2.5), metric=kind)
    over = sim(trace, hpa=replace(HPA, target=served * 1.5), metric=kind)
    assert max(p.total for p in under.series) >= 3  # ceil(served / target) = 3 replicas, as the HPA computes
    assert over.scale_events == 0 and {p.total for p in over.series} == {HPA.min_replicas}


def test_a_token_rate_plateaus_at_capacity_where_the_queue_keeps_growing() -> None:
    """Overloaded, a replica's token rate stops at what it can serve: a target above that never scales, while the
    waiting-requests gauge on the same trace does."""
    best = CAP.max_concurrency * OUTPUT / (CAP.max_concurrency * PREFILL_PER_TOKEN_S * PROMPT + OUTPUT * DECODE_S)
    hpa = replace(HPA, target=best * 1.2)
    assert sim(STEADY_OVERLOAD, hpa=hpa, metric="output_tokens_rate").scale_events == 0
    assert sim(STEADY_OVERLOAD, hpa=replace(HPA, target=5.0)).scale_events > 0


# ------------------------------------------------------------------------------------------------ 5. short burst


SLOW = Timing(start_s=1200.0, provision_s=600.0, warm_replicas=1, scrape_s=15.0, metric_delay_s=30.0)
SHORT_BURST = uniform(6.0, 300, 480)  # 3 min at ~1.5x one replica: the queue drains minutes after, long before 30 min


def test_short_burst_is_absorbed_only_by_headroom() -> None:
    fixed = sim(SHORT_BURST, hpa=replace(HPA, max_replicas=1), timing_=SLOW, duration_s=3600)
    elastic = sim(SHORT_BURST, hpa=replace(HPA, max_replicas=5), timing_=SLOW, duration_s=3600)
    headroom = sim(SHORT_BURST, hpa=replace(HPA, min_replicas=2, max_replicas=2), timing_=SLOW, duration_s=3600)
    assert elastic.scale_events > 0  # the HPA did ask for replicas...
    # ...which arrived after the burst and its queue were gone, so the requests saw exactly what one replica does.
    assert (elastic.slo_share, elastic.ttft_p50_s, elastic.ttft_p95_s, elastic.served) == (
        fixed.slo_share,
        fixed.ttft_p50_s,
        fixed.ttft_p95_s,
        fixed.served,
    )
    assert elastic.replica_hours > fixed.replica_hours  # paid for, not used
    assert fixed.slo_share < 0.9
    assert headroom.slo_share > max(0.95, fixed.slo_share + 0.1)
    assert headroom.ttft_p95_s < fixed.ttft_p95_s


# ------------------------------------------------------------------------------------------------ 6. ready after start


@pytest.mark.parametrize(
    "timing_",
    [FAST, replace(FAST, start_s=300.0), replace(FAST, start_s=120.0, provision_s=240.0, warm_replicas=1)],
    ids=["start-60s", "start-300s", "provision-240s+start-120s"],
)
def test_a_new_replica_serves_only_once_ready(timing_: Timing) -> None:
    trace = uniform(20.0, 120, 1800)
    r = sim(trace, timing_=timing_)
    lag = timing_.start_s + (timing_.provision_s if timing_.warm_replicas <= HPA.min_replicas else 0.0)
    grew, served = first_rise(r.series, "total"), first_rise(r.series, "ready")
    # Points are a minute apart: the replica was added at most 60 s before the point that first shows it.
    assert lag - 60 < served - grew <= lag + 60
    assert all(p.ready <= p.total for p in r.series)


# ------------------------------------------------------------------------------------------------ 7. light load


def test_light_steady_load_is_served_at_prefill_speed() -> None:
    trace = builtin("steady", duration_s=1800, base_rps=2.0, seed=11, prompt=(PROMPT, 150), output=(OUTPUT, 15))
    r = sim(trace, hpa=None, replicas=2)
    late = sum(1 for q in trace if q.arrival_s >= 1800 - 5)
    assert r.requests == len(trace) > 3000
    assert r.requests - late <= r.served <= r.requests
    mean_prompt = sum(q.prompt_tokens for q in trace) / len(trace)
    prefill = CAP.prefill_s(round(mean_prompt))
    # A request waits only for the prefills admitted before it in its step: mostly none, sometimes one.
    assert 0.75 * prefill <= r.ttft_p50_s <= 1.5 * prefill
    assert r.ttft_p95_s <= 4 * prefill
    assert r.slo_share > 0.99
    assert r.scale_events == 0 and {(p.ready, p.total) for p in r.series} == {(2, 2)}
    # Little's law: ~2 rps x ~1.5 s in service keeps ~3 sequences running, far from 16 slots: nothing waits a minute.
    assert max(p.queue for p in r.series) <= 2
    # Arrivals per minute add up to the trace (the first point holds only the first step's).
    assert sum(p.arrivals for p in r.series) == sum(1 for q in trace if q.arrival_s < 29 * 60 + 1)


def test_overload_without_hpa_leaves_requests_unserved_and_counted_as_missed() -> None:
    trace = uniform(30.0, 0, 600)  # 4x one replica
    r = sim(trace, hpa=None, replicas=1, duration_s=600)
    assert r.served < r.requests
    assert r.slo_share <= r.served / r.requests
    assert r.peak_queue > 1000


@pytest.mark.parametrize("dt", [1.0, 0.5, 0.1])
def test_a_saturated_replica_serves_no_faster_than_its_timeline_allows(dt: float) -> None:
    """Prefills and decode steps share one timeline: at most 8 requests per 8 prefills + 49 decode steps (the prefill
    emits each request's first token)."""
    r = sim(uniform(30.0, 0, 600), hpa=None, replicas=1, duration_s=600, dt=dt)
    bound = CAP.max_concurrency / (CAP.max_concurrency * CAP.prefill_s(PROMPT) + (OUTPUT - 1) * DECODE_S)
    # `served` counts first tokens: the last batch may have started without finishing.
    assert r.served <= bound * 600 + CAP.max_concurrency
    # ... and continuous batching keeps it close to that, whatever the step size.
    assert r.served >= 0.95 * bound * 600


# ------------------------------------------------------------------------------------------------ 8. cost


@FEW
@given(st.integers(min_value=1, max_value=3), st.integers(min_value=0, max_value=2), st.floats(min_value=0.1, max_value=40.0))
def test_cost_is_replica_hours_times_price(min_replicas: int, extra: int, price: float) -> None:
    hpa = HpaSpec(min_replicas=min_replicas, max_replicas=min_replicas + extra, target=2.0)
    r = simulate(CAP, hpa, FAST, BURST, duration_s=1800, slo_ttft_s=SLO, hourly_per_replica=price)
    assert r.cost_usd == pytest.approx(r.replica_hours * price)
    assert r.replica_hours >= min_replicas * 1800 / 3600 - 1e-9
    assert r.replica_hours <= (min_replicas + extra) * 1800 / 3600 + 1e-9


def test_fixed_replicas_cost_exactly_their_hours() -> None:
    r = sim(BURST, hpa=None, replicas=3, duration_s=1800)
    assert r.replica_hours == pytest.approx(1.5)
    assert r.cost_usd == pytest.approx(1.5 * PRICE)


# ------------------------------------------------------------------------------------------------ 9. metric delay


@FEW
@given(st.floats(min_value=0, max_value=300), st.floats(min_value=0, max_value=300))
def test_a_staler_metric_never_scales_up_earlier(a: float, b: float) -> None:
    trace = uniform(20.0, 300, 1200)
    early, late = (sim(trace, timing_=replace(FAST, metric_delay_s=d), duration_s=1200) for d in sorted((a, b)))
    assert first_rise(early.series, "total") <= first_rise(late.series, "total")


def test_metric_delay_shows_in_the_first_scale_up() -> None:
    trace = uniform(20.0, 300, 1200)
    prompt, stale = (sim(trace, timing_=replace(FAST, metric_delay_s=d), duration_s=1200) for d in (0.0, 240.0))
    assert first_rise(stale.series, "total") - first_rise(prompt.series, "total") >= 180


# ------------------------------------------------------------------------------------------------ a shipped workload


@pytest.fixture(scope="module")
def staging() -> tuple[StackConfig, list[dict[str, Any]]]:
    capture = plan_run(StackFile.read(STACKS / "Pulumi.staging.yaml"))
    return capture.config, [r.as_json() for r in capture.resources]


@pytest.fixture(scope="module")
def gemma(staging: tuple[StackConfig, list[dict[str, Any]]]) -> tuple[Workload, HpaSpec]:
    cfg, resources = staging
    workload = cfg.workloads["gemma-9b"]
    hpa = hpa_of(resources, workload)
    assert hpa is not None
    return workload, hpa


def test_gemma_burst_on_staging_respects_its_hpa_and_start_time(
    staging: tuple[StackConfig, list[dict[str, Any]]], gemma: tuple[Workload, HpaSpec], catalog: Catalog
) -> None:
    cfg, _ = staging
    workload, hpa = gemma
    assert (hpa.min_replicas, hpa.max_replicas, hpa.target) == (1, 4, 5.0)  # stacks/Pulumi.staging.yaml
    t = timing(cfg, catalog, workload)
    capacity = replica_capacity(catalog, workload)
    trace = trace_for("burst", capacity, hpa, 1.0)
    r = run_case(cfg, catalog, workload, hpa, trace, 1.0)
    assert r == run_case(cfg, catalog, workload, hpa, trace, 1.0)
    assert r.requests == len(trace) and r.scale_events > 0
    assert all(hpa.min_replicas <= p.total <= hpa.max_replicas and p.ready <= p.total for p in r.series)
    lag = t.start_s + (t.provision_s if t.warm_replicas <= hpa.min_replicas else 0.0)
    assert first_rise(r.series, "ready") - first_rise(r.series, "total") > lag - 60
    assert r.cost_usd == pytest.approx(r.replica_hours * hourly_per_replica(cfg, catalog, workload))
    assert r.replica_hours >= hpa.min_replicas
    # The built-in traces average UTILIZATION (0.6) of min_replicas' throughput: steady needs no second replica.
    steady = run_case(cfg, catalog, workload, hpa, trace_for("steady", capacity, hpa, 1.0), 1.0)
    assert steady.slo_share >= r.slo_share
    assert 0 < replica_rps(capacity) < capacity.max_concurrency / capacity.prefill_s(512)


# ------------------------------------------------------------------------------------------------ 10. the CLI


def _azure_csv(path: Path, rows: int = 120) -> None:
    with path.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["TIMESTAMP", "ContextTokens", "GeneratedTokens"])
        for i in range(rows):
            seconds = 5 * i  # a request every 5 s for 10 min
            writer.writerow([f"2023-11-16 18:{15 + seconds // 60:02d}:{seconds % 60:02d}.6805900", 300 + i, 40])


def test_cli_simulates_the_builtin_traces_and_writes_charts(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        main, ["simulate", "dev", "--hours", "0.5", "--recommend-hours", "0", "--out", str(tmp_path), "--stacks-dir", str(STACKS)]
    )
    assert result.exit_code == 0, result.output
    assert re.search(r"workload\s+trace\s+TTFT p50 s", result.output)
    md = (tmp_path / "dev" / "simulation.md").read_text()
    titles = re.findall(r'```mermaid\nxychart-beta\n  title "([^":]+):', md)
    assert md.count("```mermaid") == len(titles) > 0  # every Mermaid block is an xychart
    cases = [f"llama-8b, {t}" for t in ("steady", "diurnal", "burst", "ramp")]  # dev's one autoscaled workload
    assert set(titles) == set(cases)
    assert [t for i, t in enumerate(titles) if t not in titles[:i]] == cases  # in table order
    for t in ("steady", "diurnal", "burst", "ramp"):
        assert re.search(rf"\| llama-8b\s*\| {t}\s*\|", md), t
    assert "## Recommended settings" not in md


def test_cli_uses_a_given_trace_and_names_it_by_its_stem(tmp_path: Path) -> None:
    trace = tmp_path / "azure-sample.csv"
    _azure_csv(trace)
    result = CliRunner().invoke(
        main,
        ["simulate", "dev", "--trace", str(trace), "--recommend-hours", "0", "--out", str(tmp_path), "--stacks-dir", str(STACKS)],
    )
    assert result.exit_code == 0, result.output
    md = (tmp_path / "dev" / "simulation.md").read_text()
    titles = re.findall(r'```mermaid\nxychart-beta\n  title "([^":]+):', md)
    assert titles and set(titles) == {"llama-8b, azure-sample"}
    assert md.count("```mermaid") == len(titles)
    assert re.search(r"\| llama-8b\s*\| azure-sample\s*\|", md)
    assert not any(t in md for t in ("steady", "diurnal", "ramp"))
    assert "azure-sample" in result.output


def test_cli_rejects_an_unknown_workload(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        main, ["simulate", "dev", "--workload", "nope", "--hours", "0.1", "--out", str(tmp_path), "--stacks-dir", str(STACKS)]
    )
    assert result.exit_code == 2
    assert "no autoscaled workload named nope" in result.output
    assert not (tmp_path / "dev").exists()


def test_the_series_has_one_point_per_started_minute() -> None:
    assert len(sim([], duration_s=601).series) == math.ceil(601 / 60)
    assert [p.t_s for p in sim([], duration_s=180).series] == [0.0, 60.0, 120.0]


# ------------------------------------------------------------------------------------------------ 11. batching modes


CHUNKED = replace(CAP, max_batched_tokens=CAP.max_concurrency + 200)
"""A full batch's decode tokens and a 200-token chunk: the capacity model's roofline step is the larger of the weight
read (20 ms) and the compute (208 tokens, 21 ms), so the chunk rides along with the decode step."""
SPLIT = replace(CAP, disaggregated=True)
SERIAL_RPS = CAP.max_concurrency / (CAP.max_concurrency * CAP.prefill_s(PROMPT) + (OUTPUT - 1) * DECODE_S)
"""What one replica serves with prefill apart: 8 prefills then 49 decode steps per 8 requests (5.8/s)."""


def fixed(capacity: ReplicaCapacity, trace: list[Request], duration_s: int = 600) -> Result:
    return simulate(capacity, None, FAST, trace, duration_s=duration_s, slo_ttft_s=SLO, hourly_per_replica=PRICE, replicas=1)


@pytest.mark.parametrize("capacity", [CHUNKED, SPLIT], ids=["chunked", "disaggregated"])
def test_each_batching_mode_is_deterministic_and_serves_light_load_within_the_objective(capacity: ReplicaCapacity) -> None:
    trace = builtin("steady", duration_s=600, base_rps=2.0, seed=4, prompt=(PROMPT, 100), output=(OUTPUT, 10))
    a, b = fixed(capacity, trace), fixed(capacity, trace)
    assert a == b
    assert a.served >= len(trace) - 4 and a.slo_share > 0.99


def test_chunked_prefill_lowers_ttft_under_mixed_load_where_prefill_apart_queues() -> None:
    """At 6.5 requests/s (over prefill apart's 5.8/s) the prompts ride along with decode steps when chunked: the
    replica keeps up, where prefilling apart stalls decode and the queue grows."""
    trace = uniform(6.5, 0, 600)
    apart, chunked = fixed(CAP, trace), fixed(CHUNKED, trace)
    assert apart.ttft_p95_s > 10 * chunked.ttft_p95_s
    assert chunked.slo_share > 0.95 > apart.slo_share
    light = uniform(1.0, 0, 600)  # no queue: the first token comes after the 3 steps that carry the prompt's chunks
    assert fixed(CHUNKED, light).ttft_p50_s == pytest.approx(3 * DECODE_S, rel=0.05)


def test_a_chunk_budget_below_a_prompt_spreads_it_over_steps() -> None:
    small = replace(CHUNKED, max_batched_tokens=100)  # a 500-token prompt takes at least 5 steps
    r = fixed(small, uniform(0.5, 0, 600))
    assert r.ttft_p50_s >= 5 * DECODE_S
    assert fixed(CHUNKED, uniform(0.5, 0, 600)).ttft_p50_s < r.ttft_p50_s


@pytest.mark.parametrize("capacity", [CAP, CHUNKED], ids=["prefill-apart", "chunked"])
def test_the_kv_cache_bounds_the_running_batch(capacity: ReplicaCapacity) -> None:
    """Room for 3 sequences of 500 + 50 tokens: the batch stays at 3 of its 8 slots, and throughput with it."""
    bounded = replace(capacity, kv_capacity_tokens=3 * (PROMPT + OUTPUT))
    trace = uniform(30.0, 0, 600)
    free, tight = fixed(capacity, trace), fixed(bounded, trace)
    three = 3 / ((OUTPUT - 1) * DECODE_S)  # a batch of 3 through its decode steps, even with its prefills hidden
    assert tight.served <= three * 600 + 3 < 0.8 * free.served
    roomy = replace(capacity, kv_capacity_tokens=100 * (PROMPT + OUTPUT))  # a bound that never binds changes nothing
    assert fixed(roomy, trace) == free


def test_disaggregated_prefill_does_not_stall_decode() -> None:
    """Saturated, prefill on its own slice leaves decode steps alone: 8 requests per 49 decode steps (8.2/s) instead of
    prefill apart's 5.8/s; the first token still waits for the prefill."""
    trace = uniform(30.0, 0, 600)
    apart, split = fixed(CAP, trace), fixed(SPLIT, trace)
    decode_bound = CAP.max_concurrency / ((OUTPUT - 1) * DECODE_S)
    assert apart.served <= SERIAL_RPS * 600 + 8
    assert SERIAL_RPS * 600 + 8 < split.served <= decode_bound * 600 + 8
    assert fixed(SPLIT, uniform(1.0, 0, 600)).ttft_p50_s == pytest.approx(CAP.prefill_s(PROMPT))


# ------------------------------------------------------------------------------------------------ 12. bounded runs


def test_a_bounded_run_gives_up_exactly_when_the_full_run_falls_outside() -> None:
    full = sim(BURST, hpa=replace(HPA, max_replicas=1))
    assert 0.1 < full.slo_share < 0.9
    assert sim(BURST, hpa=replace(HPA, max_replicas=1), within=Bounds(full.slo_share)) == full
    assert sim(BURST, hpa=replace(HPA, max_replicas=1), within=Bounds(0.0, full.cost_usd)) == full
    with pytest.raises(OutOfBounds):
        sim(BURST, hpa=replace(HPA, max_replicas=1), within=Bounds(full.slo_share + 1e-6))
    with pytest.raises(OutOfBounds):
        sim(BURST, hpa=replace(HPA, max_replicas=1), within=Bounds(0.0, full.cost_usd * 0.99))
