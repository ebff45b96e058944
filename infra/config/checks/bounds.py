"""Numbers the stack derives from config, against the bound of the field they land in; and over-provisioning.

Each error names the user's key that produced the number, the number and the bound: a GCPBackendPolicy timeout from
`gateway.tokens_per_second`, an HPA target as a Kubernetes quantity, the picker's requests in milli-CPU and MiB, the
bucket's soft-delete window in seconds. Over-provisioned memory must be justified (sizing.OVERPROVISION_RATIO).
"""

from __future__ import annotations

from infra import sizing
from infra.config.checks.context import CheckContext
from infra.config.checks.serving import exposed_names
from infra.config.errors import ns_path
from infra.config.model import Workload

SHARE_METRICS = frozenset({"vllm:kv_cache_usage_perc"})
"""Gauges that are a share from 0 to 1 (infra/catalog/metrics.yaml): a target above 1 is never reached."""
SOFT_DELETE_DAYS = (7, 90)
"""GCS soft delete: off (0) or a retention of 7 to 90 days (604800-7776000 s); anything between is refused by the API."""


def check_bounds(ctx: CheckContext, workloads: dict[str, Workload]) -> None:
    check_gateway_timeouts(ctx)
    check_hpa_targets(ctx)
    check_picker_quantities(ctx)
    days = ctx.sections.model_storage.soft_delete_days
    if 0 < days < SOFT_DELETE_DAYS[0]:
        ctx.add(
            ns_path("model_storage", "soft_delete_days"),
            f"GCS keeps soft-deleted objects for 7 to 90 days, or not at all; {days} days is {days * 86400} s, "
            "below the API's 604800 s",
            f"0, or {SOFT_DELETE_DAYS[0]} to {SOFT_DELETE_DAYS[1]}",
            days,
        )
    check_overprovisioning(ctx, workloads)


def check_gateway_timeouts(ctx: CheckContext) -> None:
    gw = ctx.sections.gateway
    names = [n for n in exposed_names(ctx) if n in ctx.sections.workloads]
    if not names:
        return
    longest = max(names, key=lambda n: ctx.sections.workloads[n].max_context)
    context = ctx.sections.workloads[longest].max_context
    timeout = sizing.backend_timeout_s(context, gw.tokens_per_second, gw.min_timeout_s)
    if timeout > sizing.MAX_BACKEND_TIMEOUT_S:
        ctx.add(
            ns_path("gateway", "tokens_per_second"),
            f"workload {longest}'s GCPBackendPolicy timeoutSec would be {context} tokens / {gw.tokens_per_second:g} "
            f"tokens/s = {timeout} s, above the {sizing.MAX_BACKEND_TIMEOUT_S} s Google's load balancers allow for a request",
            f">= {context / sizing.MAX_BACKEND_TIMEOUT_S:.3g} tokens/s",
            gw.tokens_per_second,
        )


def check_hpa_targets(ctx: CheckContext) -> None:
    """The target lands in the HPA's `averageValue` as a quantity in whole milli-units (components.serving_objects)."""
    for name, w in ctx.sections.workloads.items():
        auto = w.autoscaling
        if auto is None or auto.target is None:
            continue
        path = ns_path("workloads", name, "autoscaling", "target")
        milli = auto.target * 1000
        if round(milli) == 0:
            ctx.add(path, "the HPA's averageValue would be the quantity 0", "a target >= 0.001", auto.target)
        elif abs(milli - round(milli)) > 1e-6:
            ctx.add(
                path,
                f"a Kubernetes quantity keeps milli-units: the HPA would hold {round(milli)}m, not {auto.target:g}",
                "a multiple of 0.001",
                auto.target,
            )
        metric = auto.metric or ""
        if metric in SHARE_METRICS and auto.target > 1:
            ctx.add(path, f"{metric} is a share from 0 to 1: the HPA would never scale up", "a target <= 1", auto.target)


def check_picker_quantities(ctx: CheckContext) -> None:
    picker = ctx.sections.gateway.picker
    if picker is None:
        return
    cpu_milli, memory_mib = picker.cpu * 1000, picker.memory_gib * 1024
    if round(cpu_milli) < 1 or abs(cpu_milli - round(cpu_milli)) > 1e-6:
        ctx.add(
            ns_path("gateway", "picker", "cpu"),
            f"the picker's CPU request is a whole number of millicores; {picker.cpu:g} CPU would be {round(cpu_milli)}m",
            "a multiple of 0.001, at least 0.001",
            picker.cpu,
        )
    if round(memory_mib) < 1 or abs(memory_mib - round(memory_mib)) > 1e-6:
        ctx.add(
            ns_path("gateway", "picker", "memory_gib"),
            f"the picker's memory request is a whole number of MiB; {picker.memory_gib:g} GiB would be {round(memory_mib)}Mi",
            "a multiple of 1/1024 GiB, at least 1 MiB",
            picker.memory_gib,
        )


def check_overprovisioning(ctx: CheckContext, workloads: dict[str, Workload]) -> None:
    """`justification` means what the README says: memory provisioned beyond OVERPROVISION_RATIO x what the workload
    needs is stated, or refused (staging, prod) or reported (dev); a justification with nothing to justify is refused."""
    env = ctx.sections.environment
    limit = sizing.OVERPROVISION_RATIO
    for name, w in workloads.items():
        c, fit = w.config, w.fit
        path = ns_path("workloads", name, "justification")
        over = fit.ratio > limit
        what = f"{fit.shape} provides {fit.ratio:.2f} x the {fit.required_gib:.1f} GiB {c.model} needs"
        if over and c.justification is None:
            problem = f"{what}, above {limit:g} (half the chips or GPUs would hold it) with no reason given"
            expected = "a justification (throughput, disaggregation or latency), or a smaller shape"
            (ctx.advise if env == "dev" else ctx.add)(path, problem, expected, None)
        elif not over and c.justification is not None:
            ctx.add(path, f"{what}, within {limit:g}: nothing is over-provisioned", "the key removed", c.justification)
        elif c.justification == "disaggregation" and c.mode != "disaggregated":
            ctx.add(path, "the workload does not serve disaggregated", "throughput or latency", c.justification)
