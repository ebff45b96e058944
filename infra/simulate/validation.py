"""The capacity model against published benchmarks (infra/catalog/published.yaml): the fit of each engine's factors
on the fit points, and the accuracy on the test points that the README's table and tests/test_simulate_validation.py
both read from here.

Run `python -m infra.simulate.validation` to print the factors the fit points give (for throughput.yaml) and the
README table.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from functools import partial

from infra.catalog import Catalog, Factors, PublishedPoint, load, load_published
from infra.simulate.capacity import ReplicaCapacity, capacity_of
from infra.simulate.fit import Measurement, Summary, errors, fit_factors, summary

MEDIAN_LIMIT = 1.15
WORST_LIMIT = 2.0
"""Issue #19's bar for the test points: median ratio error at most x1.15, none worse than x2."""


def _capacity(catalog: Catalog, point: PublishedPoint, factors: Factors) -> ReplicaCapacity:
    return capacity_of(
        catalog,
        engine=point.engine,
        model=point.model,
        accelerator=point.accelerator,
        devices=point.devices,
        tensor_parallel=point.tensor_parallel,
        weight_dtype=point.weight_dtype,
        kv_dtype=point.kv_dtype,
        max_concurrency=point.concurrency,
        max_batched_tokens=point.max_batched_tokens,
        static_cache_tokens=point.static_cache_tokens,
        factors=factors,
    )


def measurement(catalog: Catalog, point: PublishedPoint) -> Measurement:
    return Measurement(
        capacity=partial(_capacity, catalog, point),
        concurrency=point.concurrency,
        prompt_tokens=point.prompt_tokens,
        output_tokens=point.output_tokens,
        metric=point.metric,
        value=point.published,
    )


def points(role: str, engine: str | None = None) -> list[PublishedPoint]:
    return [p for p in load_published().points if p.role == role and engine in (None, p.engine)]


def fitted(catalog: Catalog, engine: str) -> Factors:
    """The engine's factors fitted to its published fit points, searched from the catalog's values."""
    return fit_factors([measurement(catalog, p) for p in points("fit", engine)], catalog.throughput.engines[engine])


@dataclass(frozen=True)
class Row:
    engine: str
    accelerator: str
    summary: Summary


def accuracy(catalog: Catalog) -> list[Row]:
    """Ratio error of the catalog's factors on the test points, per engine and accelerator, then over all of them."""
    groups: dict[tuple[str, str], list[float]] = defaultdict(list)
    for p in points("test"):
        (ratio,) = errors([measurement(catalog, p)], catalog.throughput.engines[p.engine])
        groups[(p.engine, p.accelerator)].append(ratio)
    rows = [Row(e, a, summary(r)) for (e, a), r in sorted(groups.items())]
    return [*rows, Row("all", "all", summary([r for g in groups.values() for r in g]))]


def accuracy_table(catalog: Catalog) -> str:
    """The README's accuracy table (Markdown), from `accuracy`."""
    lines = ["| Engine | Accelerator | Test points | Median error | Worst error |", "|---|---|---:|---:|---:|"]
    for r in accuracy(catalog):
        lines.append(f"| {r.engine} | {r.accelerator} | {r.summary.points} | ×{r.summary.median:.2f} | ×{r.summary.worst:.2f} |")
    return "\n".join(lines)


if __name__ == "__main__":
    catalog = load()
    for engine in sorted({p.engine for p in points("fit")}):
        print(engine, fitted(catalog, engine))
    print(accuracy_table(catalog))
