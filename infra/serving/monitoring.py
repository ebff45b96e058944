"""The environment's dashboard and alert policies, derived from the workloads, their HPAs, pools and the gateway.

Owned by the serving stack: every chart and alert names a workload's PodMonitoring (`resource.label.job` is the
PodMonitoring's name, `namespace` its namespace), HPA or route, and its thresholds come from the same config those
objects do, so a change of `slo_ttft_s`, `max_replicas` or a route deploys with them. Metric names come from
`infra/catalog/monitoring.yaml` (and metrics.yaml's HPA gauges), each checked against its engine's source.

Alert thresholds (runbooks in the README, *Operating it*):
- TTFT: the workload's p95 time to first token above `slo_ttft_s`, for longer than one replica takes to start (the
  HPA's scale-up period): by then autoscaling has had its chance.
- Saturated at max_replicas: the HPA's own metric above its target while its current replicas equal `max_replicas`,
  for one start time. For vLLM and JetStream that metric is the queue by default; Triton's is its output-token rate.
- Gateway errors: a route's 5xx share of requests above `monitoring.max_error_ratio` over 5 minutes.
- Unschedulable: a workload's pods unschedulable longer than its pool's provisioning time (catalog loading.yaml).
- Restarts: any model-server container restart.
"""

from __future__ import annotations

import math

import pulumi

from components.endpoint_picker import picker_name
from components.monitoring import Alert, Chart, Condition, Match, Monitoring, MonitoringArgs, Section, Series
from infra.catalog import Catalog
from infra.catalog.monitoring import MonitoringCatalog, prometheus_type
from infra.catalog.monitoring import load as load_monitoring
from infra.config import StackConfig, Workload
from infra.names import stack_prefix
from infra.serving import gateway as gateway_serving
from infra.serving.common import hpa_target
from infra.simulate.run import start_s

PROM_RESOURCE = "prometheus_target"
ERROR_WINDOW_S = 300
"""The gateway's error ratio is taken over 5 minutes: long enough to hold a few requests of a quiet route."""
RESTART_WINDOW_S = 300
LATENCY_WINDOW_S = 300
"""Latency percentiles over 5-minute windows of the histograms."""


def minutes(seconds: float) -> int:
    """An alert duration: whole minutes (the API's rule), at least one."""
    return max(60, 60 * math.ceil(seconds / 60))


def servers(cfg: StackConfig) -> dict[str, Workload]:
    """Real-time servers: batch Jobs have no PodMonitoring, HPA or route."""
    return {n: w for n, w in cfg.workloads.items() if w.config.batch is None}


def engine_series(w: Workload, name: str, kind: str, **agg: object) -> Series:
    """An engine metric of one workload's pods: the series its PodMonitoring (named after the workload) scrapes."""
    return Series(
        prometheus_type(name, kind),  # type: ignore[arg-type]
        PROM_RESOURCE,
        (Match("resource", "namespace", w.config.namespace), Match("resource", "job", w.name)),
        **agg,  # type: ignore[arg-type]
    )


def percentile(w: Workload, histogram: str) -> Series:
    return engine_series(
        w, histogram, "histogram", aligner="ALIGN_DELTA", reducer="REDUCE_PERCENTILE_95", period_s=LATENCY_WINDOW_S
    )


def hpa_series(w: Workload, gauge: str) -> Series:
    return Series(
        prometheus_type(gauge, "gauge"),
        PROM_RESOURCE,
        (Match("resource", "namespace", w.config.namespace), Match("metric", "horizontalpodautoscaler", w.name)),
        aligner="ALIGN_MAX",
        reducer="REDUCE_MAX",
    )


def scaling_series(catalog: Catalog, w: Workload) -> Series:
    """The HPA's metric per pod, as the adapter serves it: a gauge's mean, a counter's per-second rate."""
    kind = catalog.metrics[w.config.engine].kind(w.metric)
    aligner = "ALIGN_RATE" if kind == "counter" else "ALIGN_MEAN"
    return engine_series(w, w.metric, kind, aligner=aligner, reducer="REDUCE_MEAN")


def pod_matches(w: Workload) -> tuple[Match, ...]:
    """The workload's pods on a k8s_container resource: its namespace, pod names starting with the workload's."""
    return (Match("resource", "namespace_name", w.config.namespace), Match("resource", "pod_name", f"{w.name}-.*", regex=True))


def workload_section(cfg: StackConfig, catalog: Catalog, mon: MonitoringCatalog, w: Workload) -> Section:
    engine, series = w.config.engine, mon.engines[w.config.engine]
    charts = [Chart(f"{w.name}: {g}", (engine_series(w, g, "gauge"),), "value") for g in catalog.metrics[engine].gauges]
    charts += [
        Chart(f"{w.name}: TTFT p95", (percentile(w, series.ttft),), "s", threshold=w.config.slo_ttft_s),
        Chart(f"{w.name}: time per output token p95", (percentile(w, series.tpot),), "s"),
    ]
    if series.output_tokens:
        rate = engine_series(w, series.output_tokens, "counter", aligner="ALIGN_RATE", reducer="REDUCE_SUM")
        charts.append(Chart(f"{w.name}: output tokens/s", (rate,), "tokens/s"))
    for extra in cfg.sections.monitoring.dashboard_metrics:
        kind = mon.engine_kind(engine, extra)
        if kind is not None:  # the config check refused a metric no engine exports; another engine's is skipped here
            aligner = {"gauge": "ALIGN_MEAN", "counter": "ALIGN_RATE", "histogram": "ALIGN_DELTA"}[kind]
            reducer = "REDUCE_PERCENTILE_95" if kind == "histogram" else "REDUCE_SUM" if kind == "counter" else None
            charts.append(
                Chart(f"{w.name}: {extra}", (engine_series(w, extra, kind, aligner=aligner, reducer=reducer),), "value")
            )
    if w.config.autoscaling is not None:
        replicas = tuple(hpa_series(w, g) for g in mon.kube_state.gauges if g.startswith("kube_horizontalpodautoscaler_status"))
        charts.append(
            Chart(f"{w.name}: HPA current vs desired replicas", replicas, "replicas", threshold=w.config.autoscaling.max_replicas)
        )
        charts.append(
            Chart(
                f"{w.name}: HPA metric {w.metric} per pod",
                (scaling_series(catalog, w),),
                "value",
                threshold=hpa_target(catalog, w),
            )
        )
    charts.append(accelerator_chart(mon, w))
    if w.name in gateway_serving.exposed(cfg) and gateway_serving.uses_pool(w):
        charts += picker_charts(mon, w)
    return Section(f"{w.name} ({engine}, {w.model.name})", tuple(charts))


def accelerator_chart(mon: MonitoringCatalog, w: Workload) -> Chart:
    """TPU duty cycle from GKE's system metrics; GPU utilisation from GKE-managed DCGM, per pool."""
    if w.tpu_pools:
        duty = next(m for m in mon.system.metrics if m.endswith("accelerator/duty_cycle"))
        series = Series(
            duty, mon.system.metrics[duty].resource, pod_matches(w), reducer="REDUCE_MEAN", group_by=("resource.label.pod_name",)
        )
        return Chart(f"{w.tpu_pools[0].name}: TPU duty cycle ({w.name})", (series,), "%")
    assert w.gpu_pool is not None
    gpu = Series(
        prometheus_type(mon.dcgm.gauges[0], "gauge"),
        PROM_RESOURCE,
        (Match("metric", "exported_namespace", w.config.namespace), Match("metric", "exported_pod", f"{w.name}-.*", regex=True)),
        reducer="REDUCE_MEAN",
        group_by=("metric.label.exported_pod",),
    )
    return Chart(f"{w.gpu_pool.name}: GPU utilisation ({w.name})", (gpu,), "%")


def picker_charts(mon: MonitoringCatalog, w: Workload) -> list[Chart]:
    job = (Match("resource", "namespace", w.config.namespace), Match("resource", "job", picker_name(w.name)))
    charts = [
        Chart(f"{w.name} picker: {g}", (Series(prometheus_type(g, "gauge"), PROM_RESOURCE, job),), "value")
        for g in mon.picker.gauges
    ]
    rates = tuple(
        Series(prometheus_type(c, "counter"), PROM_RESOURCE, job, "ALIGN_RATE", "REDUCE_SUM") for c in mon.picker.counters
    )
    charts.append(Chart(f"{w.name} picker: requests and errors/s", rates, "1/s"))
    latency = tuple(
        Series(
            prometheus_type(h, "histogram"), PROM_RESOURCE, job, "ALIGN_DELTA", "REDUCE_PERCENTILE_95", period_s=LATENCY_WINDOW_S
        )
        for h in mon.picker.histograms
    )
    charts.append(Chart(f"{w.name} picker: scheduling p95", latency, "s"))
    return charts


def gateway_series(
    cfg: StackConfig, mon: MonitoringCatalog, *, latency: bool = False, errors: bool = False, period_s: int = 60
) -> Series:
    """The gateway's load-balancer metric per route (the URL map's path rule), in the cluster's region."""
    lb = mon.load_balancer.classes[cfg.gateway.gateway_class]
    matches = (Match("resource", "region", cfg.region),) + ((Match("metric", "response_code_class", 500),) if errors else ())
    group = ("resource.label.matched_url_path_rule",)
    if latency:
        return Series(lb.latencies, lb.resource, matches, "ALIGN_DELTA", "REDUCE_PERCENTILE_95", group, LATENCY_WINDOW_S)
    return Series(lb.request_count, lb.resource, matches, "ALIGN_RATE", "REDUCE_SUM", group, period_s)


def gateway_section(cfg: StackConfig, mon: MonitoringCatalog) -> Section:
    return Section(
        "Inference Gateway, per route",
        (
            Chart("requests/s", (gateway_series(cfg, mon),), "1/s"),
            Chart("5xx/s", (gateway_series(cfg, mon, errors=True),), "1/s"),
            Chart("total latency p95", (gateway_series(cfg, mon, latency=True),), "ms"),
        ),
    )


def alerts(cfg: StackConfig, catalog: Catalog, mon: MonitoringCatalog) -> tuple[Alert, ...]:
    out: list[Alert] = []
    for name, w in servers(cfg).items():
        start = minutes(start_s(catalog, w))
        series = mon.engines[w.config.engine]
        out.append(
            Alert(
                f"{name}-ttft",
                (
                    Condition(
                        f"{name} TTFT p95 above {w.config.slo_ttft_s:g} s", percentile(w, series.ttft), w.config.slo_ttft_s, start
                    ),
                ),
                runbook=f"**{name}**: TTFT p95 above `slo_ttft_s` for over one replica start. See the README's *Operating it*, TTFT.",
                severity="WARNING",
            )
        )
        auto = w.config.autoscaling
        if auto is not None:
            current = next(g for g in mon.kube_state.gauges if g.endswith("status_current_replicas"))
            out.append(
                Alert(
                    f"{name}-saturated",
                    (
                        Condition(
                            f"{name} {w.metric} above the HPA target", scaling_series(catalog, w), hpa_target(catalog, w), start
                        ),
                        Condition(f"{name} at max_replicas", hpa_series(w, current), auto.max_replicas, start, "COMPARISON_GE"),
                    ),
                    runbook=f"**{name}**: load above what `max_replicas` ({auto.max_replicas}) holds. See the README's *Operating it*, saturated.",
                    severity="CRITICAL",
                    combiner="AND",
                )
            )
        restarts = next(m for m in mon.system.metrics if m.endswith("restart_count"))
        out.append(
            Alert(
                f"{name}-restarts",
                (
                    Condition(
                        f"{name} model server restarted",
                        Series(
                            restarts,
                            mon.system.metrics[restarts].resource,
                            pod_matches(w),
                            "ALIGN_DELTA",
                            "REDUCE_SUM",
                            period_s=RESTART_WINDOW_S,
                        ),
                        0,
                        60,
                    ),
                ),
                runbook=f"**{name}**: a server container restarted. See the README's *Operating it*, restarts.",
                severity="ERROR",
            )
        )
    out += unschedulable_alerts(cfg, catalog, mon)
    if gateway_serving.exposed(cfg):
        out.append(
            Alert(
                "gateway-errors",
                (
                    Condition(
                        "a route's 5xx ratio",
                        gateway_series(cfg, mon, errors=True, period_s=ERROR_WINDOW_S),
                        cfg.sections.monitoring.max_error_ratio,
                        ERROR_WINDOW_S,
                        denominator=gateway_series(cfg, mon, period_s=ERROR_WINDOW_S),
                    ),
                ),
                runbook="A route answers 5xx above `monitoring.max_error_ratio`. See the README's *Operating it*, gateway errors.",
                severity="CRITICAL",
            )
        )
    return tuple(out)


def unschedulable_alerts(cfg: StackConfig, catalog: Catalog, mon: MonitoringCatalog) -> list[Alert]:
    """Per accelerator pool: any of its workloads' pods unschedulable for longer than the pool takes to add a node."""
    unschedulable = prometheus_type(next(g for g in mon.kube_state.gauges if g.endswith("unschedulable")), "gauge")
    by_pool: dict[str, list[Workload]] = {}
    for w in servers(cfg).values():
        pool = w.tpu_pools[0].name if w.tpu_pools else w.gpu_pool.name if w.gpu_pool else None
        if pool is not None:
            by_pool.setdefault(pool, []).append(w)
    out = []
    for pool, workloads in by_pool.items():
        kind = "tpu" if workloads[0].tpu_pools else "gpu"
        wait = minutes(catalog.loading.provisioning[kind].seconds)
        conditions = tuple(
            Condition(
                f"{w.name} pods unschedulable",
                Series(
                    unschedulable,
                    PROM_RESOURCE,
                    (Match("resource", "namespace", w.config.namespace), Match("metric", "pod", f"{w.name}-.*", regex=True)),
                    "ALIGN_MAX",
                    "REDUCE_SUM",
                ),
                0,
                wait,
            )
            for w in workloads
        )
        out.append(
            Alert(
                f"{pool}-unschedulable",
                conditions,
                runbook=f"Pods for pool **{pool}** wait longer than its provisioning time. See the README's *Operating it*, unschedulable.",
                severity="ERROR",
            )
        )
    return out


def build(cfg: StackConfig, catalog: Catalog, opts: pulumi.ResourceOptions) -> None:
    if not cfg.sections.monitoring.enabled or not servers(cfg):
        return
    mon = load_monitoring()
    sections = [workload_section(cfg, catalog, mon, w) for w in servers(cfg).values()]
    if gateway_serving.exposed(cfg):
        sections.append(gateway_section(cfg, mon))
    prefix = stack_prefix(cfg)
    Monitoring(
        "monitoring",
        MonitoringArgs(
            project=cfg.project,
            prefix=prefix,
            sections=tuple(sections),
            alerts=alerts(cfg, catalog, mon),
            notification_channels=cfg.sections.monitoring.notification_channels,
            labels={"stack": cfg.stack, "environment": cfg.environment},
        ),
        opts,
    )
