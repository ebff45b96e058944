"""What-if runs for a planned stack: each autoscaled workload's rendered HPA on traffic traces, and a recommendation.

Everything comes from what the stack already derives: the HPA as rendered (so a change of target, window
or `maxReplicas` in a pull request shows here), the capacity model from the catalog, the start time
`plan` predicts, the pool's warm nodes, the scrape interval, and the price catalog.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from infra import sizing
from infra.catalog import Catalog
from infra.config import StackConfig, Workload
from infra.serving import models as model_serving
from infra.simulate.capacity import ReplicaCapacity, replica_capacity
from infra.simulate.engine import Bounds, OutOfBounds, Result, Timing, metric_kind, simulate
from infra.simulate.hpa import HpaSpec
from infra.simulate.traces import Trace, builtin

TRACES = ("steady", "diurnal", "burst", "ramp")
ADAPTER_DELAY_S = 60.0
"""The metrics adapter's read after Managed Prometheus's export ([know]: GMP exports about every 60 s)."""
PROMPT, OUTPUT = (512.0, 256.0), (256.0, 128.0)
"""Built-in traces' (mean, sd) prompt and output tokens: a chat-like mix."""
UTILIZATION = 0.6
"""Built-in traces run at this share of the minimum replicas' throughput on average."""


def hpa_of(resources: list[dict[str, Any]], workload: Workload) -> HpaSpec | None:
    """The workload's HPA as the plan rendered it."""
    for r in resources:
        inputs = r["inputs"]
        if r["type"] == "kubernetes:autoscaling/v2:HorizontalPodAutoscaler" and inputs["metadata"]["name"] == workload.name:
            return HpaSpec.from_manifest(inputs["spec"])
    return None


def start_s(catalog: Catalog, workload: Workload) -> float:
    if workload.config.engine == "jetstream-pathways":
        return sizing.jetstream_startup(
            catalog.loading, workload.model, workload.config.weight_dtype, workload.tpu_pools[0].slice
        ).predicted_s
    return model_serving.startup(catalog, workload).predicted_s


def hourly_per_replica(cfg: StackConfig, catalog: Catalog, workload: Workload) -> float:
    """On-demand price of what one replica occupies: its slices' chips, or its share of its GPU nodes."""
    if workload.config.engine == "jetstream-pathways":
        slice_ = workload.tpu_pools[0].slice
        row = catalog.tpu_chip_price(slice_.generation.name, cfg.region)
        return (row.on_demand if row else 0.0) * slice_.chips * len(workload.tpu_pools)
    if workload.tpu_pools:
        slice_ = workload.tpu_pools[0].slice
        row = catalog.tpu_chip_price(slice_.generation.name, cfg.region)
        return (row.on_demand if row else 0.0) * slice_.chips
    pool = workload.gpu_pool
    assert pool is not None
    row = catalog.machine_price(pool.config.machine_type, cfg.region)
    return (row.on_demand if row else 0.0) * workload.gpus / pool.gpus_per_vm


def timing(cfg: StackConfig, catalog: Catalog, workload: Workload) -> Timing:
    """Warm replicas: what the pool's minimum nodes hold; beyond them a node (or slice) is provisioned first."""
    scrape = float(cfg.observability.scrape_interval.rstrip("sm")) * (
        60 if cfg.observability.scrape_interval.endswith("m") else 1
    )
    if workload.tpu_pools:
        pool = workload.tpu_pools[0]
        lo, _ = pool.config.slices_per_pool
        warm = (pool.config.slices * lo if pool.config.autoscaling else pool.config.max_slices) // len(workload.tpu_pools)
        provision = catalog.loading.provisioning["tpu"].seconds
    else:
        gpu = workload.gpu_pool
        assert gpu is not None
        warm = gpu.config.min_nodes_per_zone * len(gpu.zones) // model_serving.layout(workload).nodes
        provision = catalog.loading.provisioning["gpu"].seconds
    start = catalog.loading.image_pull.seconds + start_s(catalog, workload)
    return Timing(start, provision, warm, scrape, scrape + ADAPTER_DELAY_S)


def replica_rps(capacity: ReplicaCapacity) -> float:
    """Requests per second one replica sustains at full batch on the built-in traces' mean request."""
    prompt, output = int(PROMPT[0]), int(OUTPUT[0])
    batch = capacity.max_concurrency
    # A full batch's prefills run one after another, then its decode steps emit a token for every sequence.
    per_batch = batch * capacity.prefill_s(prompt) + output * capacity.decode_step_s(batch, batch * (prompt + output // 2))
    return batch / per_batch


def trace_for(name: str, capacity: ReplicaCapacity, hpa: HpaSpec, hours: float, seed: int = 0) -> Trace:
    """The built-in trace `name` at UTILIZATION of the minimum replicas' throughput."""
    base = UTILIZATION * replica_rps(capacity) * hpa.min_replicas
    return builtin(name, duration_s=int(hours * 3600), base_rps=base, seed=seed, prompt=PROMPT, output=OUTPUT)  # type: ignore[arg-type]


def autoscaled(cfg: StackConfig, resources: list[dict[str, Any]]) -> Iterator[tuple[Workload, HpaSpec]]:
    for workload in cfg.workloads.values():
        hpa = hpa_of(resources, workload)
        if hpa is not None:
            yield workload, hpa


@dataclass(frozen=True)
class Case:
    """What a run of one workload takes besides its HPA and trace, derived once."""

    capacity: ReplicaCapacity
    timing: Timing
    slo_ttft_s: float
    hourly_per_replica: float
    metric: str
    """The engine metric the workload's HPA reads."""


def case_of(cfg: StackConfig, catalog: Catalog, workload: Workload) -> Case:
    return Case(
        replica_capacity(catalog, workload),
        timing(cfg, catalog, workload),
        workload.config.slo_ttft_s,
        hourly_per_replica(cfg, catalog, workload),
        workload.metric,
    )


@dataclass(frozen=True)
class Job:
    """One run: a case under an HPA on a trace; `metric` overrides the case's; `within`: see engine.simulate."""

    case: Case
    hpa: HpaSpec
    trace: Trace
    hours: float
    metric: str | None = None
    within: Bounds | None = None

    def run(self) -> Result | None:
        """The result, or None when it fell outside `within`."""
        c = self.case
        try:
            return simulate(
                c.capacity,
                self.hpa,
                c.timing,
                self.trace,
                duration_s=int(self.hours * 3600),
                slo_ttft_s=c.slo_ttft_s,
                hourly_per_replica=c.hourly_per_replica,
                metric=metric_kind(self.metric or c.metric),
                within=self.within,
            )
        except OutOfBounds:
            return None


def run_case(
    cfg: StackConfig,
    catalog: Catalog,
    workload: Workload,
    hpa: HpaSpec,
    trace: Trace,
    hours: float,
    metric: str | None = None,
) -> Result:
    """`metric`: the engine metric the HPA reads (default: the workload's)."""
    result = Job(case_of(cfg, catalog, workload), hpa, trace, hours, metric).run()
    assert result is not None  # no bounds
    return result


SLO_TARGET = 0.95
"""A setting meets the objective when at least this share of requests starts within the workload's TTFT objective."""
