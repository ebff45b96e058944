"""Fitting an engine's efficiency factors to measured or published serving figures, and scoring them.

A measurement is one figure (output tokens/s, median TPOT or TTFT) of a closed-loop benchmark at a concurrency and
prompt/output length, with the replica it ran on. The fit minimises the sum of squared log(predicted / measured), so
a factor of two off counts the same above and below, by a deterministic coordinate search: each factor in turn over
a grid of its range, the range narrowing around the best value every round, restarted until it stops improving. Four factors and tens of points need no
more (and no numerical library).
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from infra.catalog import Factors, Metric
from infra.simulate.capacity import ReplicaCapacity, serving_point

RANGES: dict[str, tuple[float, float]] = {
    "decode_bandwidth_efficiency": (0.05, 1.0),
    "prefill_mfu": (0.2, 0.8),
    "host_us_per_sequence": (0.0, 2000.0),
    "step_overhead_ms": (0.0, 50.0),
    "allreduce_latency_us": (0.0, 500.0),
}
"""Where each factor is searched. MFU stays within what dense matmuls reach in practice (MaxText's training MFU on v6e is
0.38-0.50, sizing-prices S23): without long-prompt TTFT points it is barely constrained, and an MFU near zero would
stand in for the host term. A host time past 2 ms a sequence, an overhead past 50 ms a step or a latency past 0.5 ms an
all-reduce would be a misconfigured server, not a trait of the engine."""
GRID = 21
ROUNDS = 12
RESTARTS = 20
"""Searches restart from their result until one no longer improves the fit."""


@dataclass(frozen=True)
class Measurement:
    capacity: Callable[[Factors], ReplicaCapacity]
    """The replica it ran on, under given factors."""
    concurrency: int
    prompt_tokens: int
    output_tokens: int
    metric: Metric
    value: float


def predict(m: Measurement, factors: Factors) -> float:
    point = serving_point(m.capacity(factors), m.concurrency, m.prompt_tokens, m.output_tokens)
    if m.metric == "output_tokens_per_s":
        return point.output_tokens_per_s
    return (point.tpot_s if m.metric == "tpot_ms" else point.ttft_s) * 1e3


def ratio_error(predicted: float, measured: float) -> float:
    """max(predicted / measured, measured / predicted): 1.0 is exact, 2.0 is a factor of two either way."""
    return max(predicted / measured, measured / predicted)


def errors(measurements: Sequence[Measurement], factors: Factors) -> list[float]:
    return [ratio_error(predict(m, factors), m.value) for m in measurements]


def _loss(measurements: Sequence[Measurement], factors: Factors) -> float:
    return sum(math.log(predict(m, factors) / m.value) ** 2 for m in measurements)


def fit_factors(measurements: Sequence[Measurement], start: Factors) -> Factors:
    """The factors that best predict `measurements`, searched from `start`. A factor the measurements do not depend
    on (an all-reduce latency without tensor parallelism) keeps its start value."""
    if not measurements:
        raise ValueError("no measurements to fit")
    best, loss = start, _loss(measurements, start)
    for _ in range(RESTARTS):
        best = _search(measurements, best)
        improved = _loss(measurements, best)
        if improved > loss * (1 - 1e-6):
            break
        loss = improved
    return best


def _search(measurements: Sequence[Measurement], best: Factors) -> Factors:
    spans = {name: hi - lo for name, (lo, hi) in RANGES.items()}
    for _ in range(ROUNDS):
        for name, (lo, hi) in RANGES.items():
            centre = getattr(best, name)
            low, high = max(lo, centre - spans[name] / 2), min(hi, centre + spans[name] / 2)
            grid = [centre] + [low + (high - low) * i / (GRID - 1) for i in range(GRID)]
            scored = [(_loss(measurements, best.model_copy(update={name: v})), abs(v - centre), v) for v in grid]
            best = best.model_copy(update={name: min(scored)[2]})
            spans[name] /= 3
    return best


@dataclass(frozen=True)
class Summary:
    points: int
    median: float
    worst: float


def summary(ratios: Sequence[float]) -> Summary:
    return Summary(points=len(ratios), median=statistics.median(ratios), worst=max(ratios))
