"""Dashboards, alerts and load tests (`monitoring`): what they name must exist, and a load test must fit the pools.

- Alerts in prod notify someone: `monitoring.notification_channels` may not be empty there.
- `monitoring.dashboard_metrics` names metrics a served engine exports (infra/catalog/monitoring.yaml, metrics.yaml).
- `monitoring.load_test.peak_rps` names a workload that gets a load test, and no load test's top rate (that, or the
  HPA design load at max_replicas) exceeds what the pools serve at max_replicas by the capacity model, unless
  `monitoring.load_test.over_capacity` says so.
"""

from __future__ import annotations

from infra.catalog.monitoring import load as load_monitoring
from infra.config.checks.context import CheckContext
from infra.config.checks.serving import exposed_names
from infra.config.errors import ns_path
from infra.config.model import Workload


def check_operations(ctx: CheckContext, workloads: dict[str, Workload]) -> None:
    mon = ctx.sections.monitoring
    if not mon.enabled:
        return
    servers = {n: w for n, w in workloads.items() if w.config.batch is None}
    if servers and ctx.sections.environment == "prod" and not mon.notification_channels:
        ctx.add(
            ns_path("monitoring", "notification_channels"),
            f"prod's alert policies ({len(servers)} servers) would notify no one",
            "at least one projects/P/notificationChannels/ID",
            [],
        )
    check_dashboard_metrics(ctx, servers)
    check_load_tests(ctx, servers)


def check_dashboard_metrics(ctx: CheckContext, servers: dict[str, Workload]) -> None:
    catalog = load_monitoring()
    engines = sorted({w.config.engine for w in servers.values()})
    for i, metric in enumerate(ctx.sections.monitoring.dashboard_metrics):
        if not any(catalog.engine_kind(e, metric) for e in engines):
            exported = {e: sorted(t.split("/")[1] for t in catalog.engine_types(e)) for e in engines}
            ctx.add(
                ns_path("monitoring", "dashboard_metrics", i),
                "no served engine exports this metric",
                f"one of {exported}",
                metric,
            )


def check_load_tests(ctx: CheckContext, servers: dict[str, Workload]) -> None:
    # The load-test derivations use the capacity model, which imports this package: imported when the check runs.
    from infra.serving.load_tests import load_plan, skip_reason

    lt = ctx.sections.monitoring.load_test
    iap = ctx.sections.gateway.iap_enabled
    tested = {n: servers[n] for n in exposed_names(ctx) if n in servers and skip_reason(servers[n].config.engine, iap) is None}
    for name in lt.peak_rps:
        if name not in tested:
            ctx.add(
                ns_path("monitoring", "load_test", "peak_rps", name),
                "no load test is rendered for this workload (a routed vLLM server, gateway without IAP)",
                f"one of {sorted(tested)}" if tested else "no key",
                name,
            )
    if lt.over_capacity:
        return
    for name, workload in tested.items():
        plan = load_plan(lt, ctx.catalog, workload)
        if plan.peak_rps > plan.capacity_rps:
            source = "monitoring.load_test.peak_rps" if plan.overridden else "the HPA design load"
            ctx.add(
                ns_path("monitoring", "load_test", "peak_rps", name),
                f"{source} of {plan.peak_rps:g} requests/s exceeds what {plan.replicas} replicas serve by the capacity "
                f"model ({plan.capacity_rps:g} requests/s); set monitoring.load_test.over_capacity to test past it",
                f"<= {plan.capacity_rps:g}",
                plan.peak_rps,
            )
