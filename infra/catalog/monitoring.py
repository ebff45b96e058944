"""What dashboards and alerts may chart (monitoring.yaml), each metric as Cloud Monitoring names it, with its source.

A metric a chart or an alert names must be one of these: an engine's (scraped by the stack's PodMonitorings), the
endpoint picker's, GKE's managed kube-state-metrics or DCGM (Managed Service for Prometheus names all four
`prometheus.googleapis.com/<name>/<kind>`), a GKE system metric, or the gateway's load-balancer metrics.
"""

from __future__ import annotations

from functools import cache
from importlib import resources
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict

from infra.catalog import load as load_catalog

PromKind = Literal["gauge", "counter", "histogram"]
PROMETHEUS = "prometheus.googleapis.com"


def prometheus_type(name: str, kind: PromKind) -> str:
    """The Cloud Monitoring metric type Managed Service for Prometheus writes a scraped metric under."""
    return f"{PROMETHEUS}/{name}/{kind}"


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class EngineSeries(_Frozen):
    """An engine's latency histograms and counters (its gauges are metrics.yaml's), and which one plays which role."""

    source: str
    ttft: str
    tpot: str
    output_tokens: str | None = None
    requests: str | None = None
    queue: str | None = None
    """The engine's waiting-requests gauge, if it exports one."""
    histograms: tuple[str, ...]
    counters: tuple[str, ...]


class MetricSet(_Frozen):
    source: str
    gauges: tuple[str, ...] = ()
    counters: tuple[str, ...] = ()
    histograms: tuple[str, ...] = ()

    def types(self) -> frozenset[str]:
        kinds: tuple[tuple[PromKind, tuple[str, ...]], ...] = (
            ("gauge", self.gauges),
            ("counter", self.counters),
            ("histogram", self.histograms),
        )
        return frozenset(prometheus_type(n, k) for k, names in kinds for n in names)


class SystemMetric(_Frozen):
    resource: str
    kind: Literal["gauge", "cumulative"]


class SystemMetrics(_Frozen):
    source: str
    metrics: dict[str, SystemMetric]


class LoadBalancerClass(_Frozen):
    resource: str
    request_count: str
    latencies: str


class LoadBalancerMetrics(_Frozen):
    source: str
    classes: dict[str, LoadBalancerClass]


class MonitoringCatalog(_Frozen):
    as_of: str
    engines: dict[str, EngineSeries]
    picker: MetricSet
    kube_state: MetricSet
    dcgm: MetricSet
    system: SystemMetrics
    load_balancer: LoadBalancerMetrics

    def engine_types(self, engine: str) -> frozenset[str]:
        """Every metric type the engine's scraped endpoint provides: its HPA gauges and rates, histograms, counters."""
        hpa = load_catalog().metrics[engine]
        series = self.engines[engine]
        return MetricSet(
            source=series.source,
            gauges=tuple(hpa.gauges),
            counters=(*hpa.rates, *series.counters),
            histograms=series.histograms,
        ).types()

    def engine_kind(self, engine: str, name: str) -> PromKind | None:
        """How the engine's metric is stored, or None when the engine does not export it."""
        hpa, series = load_catalog().metrics[engine], self.engines[engine]
        if name in hpa.gauges:
            return "gauge"
        if name in hpa.rates or name in series.counters:
            return "counter"
        return "histogram" if name in series.histograms else None

    def platform_types(self) -> frozenset[str]:
        """Metric types that come from GKE or the load balancer rather than an engine's PodMonitoring."""
        lb = {t for c in self.load_balancer.classes.values() for t in (c.request_count, c.latencies)}
        return self.kube_state.types() | self.dcgm.types() | frozenset(self.system.metrics) | lb


@cache
def load() -> MonitoringCatalog:
    raw = yaml.safe_load(resources.files(__package__).joinpath("monitoring.yaml").read_text())
    return MonitoringCatalog(**raw)
