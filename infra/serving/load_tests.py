"""Post-deploy load tests: one inference-perf CronJob per routed model, its rates derived from the HPA's design load.

The request mix is the simulator's built-in one (`infra.simulate.run.PROMPT`/`OUTPUT`, lognormal), so a report
`simulate --calibrate` reads compares like with like. The top rate is the design load at `max_replicas`: each replica
carrying `common.design_tokens_per_s` output tokens/s (what a token-rate HPA holds it at), divided by the mix's mean
output; the steps climb evenly to it. What the pools can serve is the same replicas at the capacity model's full-batch
decode rate for the mix's mean context: a top rate above that is refused unless `monitoring.load_test.over_capacity`.

Only OpenAI-compatible routes get one (inference-perf's clients speak the OpenAI API): vLLM behind the gateway.
JetStream's front (`/generate`) and Triton's KServe `generate_stream` are listed in the plan without a test. Behind IAP
none is rendered: the Job would need an OIDC token for the IAP client, which Workload Identity Federation principals
cannot mint; the plan says so.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import partial

import pulumi

from components.inference_gateway import model_prefix
from components.load_test import TIMESTAMP, Distribution, InferencePerfConfig, LoadTest, LoadTestArgs, Stage, account_name
from infra import versions
from infra.catalog import Catalog
from infra.config import StackConfig, Workload
from infra.config.schema import LoadTestConfig
from infra.serving import gateway as gateway_serving
from infra.serving.common import checkov_skips, design_tokens_per_s, image_exceptions
from infra.simulate.capacity import replica_capacity
from infra.simulate.run import OUTPUT, PROMPT

OPENAI_ENGINES = frozenset({"vllm"})
IN_FLIGHT_FACTOR = 2


def report_prefix(workload: str) -> str:
    """Where a workload's load-test reports go in the model bucket; the Job's account may create objects only here."""
    return f"benchmarks/{workload}/"


@dataclass(frozen=True)
class LoadPlan:
    workload: str
    model: str
    route: str
    """The gateway's path prefix for the model (the HTTPRoute's match)."""
    replicas: int
    design_rps: float
    capacity_rps: float
    peak_rps: float
    overridden: bool
    """The peak is `monitoring.load_test.peak_rps.<workload>`, not the design load."""
    in_flight: int
    """Requests the client keeps open at most: twice what the replicas batch at once (the rest queue at the servers)."""
    rates: tuple[float, ...]


def skip_reason(engine: str, iap: bool) -> str | None:
    """Why a routed workload gets no load test, or None when it gets one."""
    if iap:
        return "behind IAP: the Job cannot mint an IAP token with Workload Identity Federation"
    if engine not in OPENAI_ENGINES:
        return f"{engine} does not serve the OpenAI API inference-perf speaks"
    return None


def skipped(cfg: StackConfig) -> dict[str, str]:
    """Routed workloads without a load test, and why."""
    reasons = {n: skip_reason(w.config.engine, cfg.gateway.iap_enabled) for n, w in gateway_serving.exposed(cfg).items()}
    return {n: r for n, r in reasons.items() if r is not None}


def tested(cfg: StackConfig) -> dict[str, Workload]:
    """The routed workloads a load test is rendered for."""
    if not cfg.sections.monitoring.enabled:
        return {}
    skip = skipped(cfg)
    return {n: w for n, w in gateway_serving.exposed(cfg).items() if n not in skip}


def max_replicas(workload: Workload) -> int:
    auto = workload.config.autoscaling
    return auto.max_replicas if auto else workload.config.replicas


def mix_context_tokens() -> int:
    """A mean request's context half-way through its answer."""
    return int(PROMPT[0] + OUTPUT[0] // 2)


def load_plan(lt: LoadTestConfig, catalog: Catalog, workload: Workload) -> LoadPlan:
    replicas = max_replicas(workload)
    output = OUTPUT[0]
    design = replicas * design_tokens_per_s(catalog, workload) / output
    replica = replica_capacity(catalog, workload)
    capacity = replicas * replica.decode_tokens_per_s(mix_context_tokens()) / output
    peak = lt.peak_rps.get(workload.name, design)
    return LoadPlan(
        workload=workload.name,
        model=workload.model.name,
        route=model_prefix(workload.model.name),
        replicas=replicas,
        design_rps=round(design, 3),
        capacity_rps=round(capacity, 3),
        peak_rps=round(peak, 3),
        overridden=workload.name in lt.peak_rps,
        in_flight=IN_FLIGHT_FACTOR * replicas * replica.max_concurrency,
        rates=tuple(round(peak * (i + 1) / lt.stages, 3) for i in range(lt.stages)),
    )


def perf_config(cfg: StackConfig, workload: Workload, plan: LoadPlan, base: str) -> InferencePerfConfig:
    """inference-perf's config for one model: its route on the gateway, its tokenizer, the simulator's mix."""
    half = workload.config.max_context // 2

    def dist(mean_sd: tuple[float, float]) -> Distribution:
        return Distribution(mean=mean_sd[0], std_dev=mean_sd[1], min=1, max=min(half, math.ceil(mean_sd[0] * 4)))

    return InferencePerfConfig(
        model_name=workload.model.name,
        base_url=f"{base}{plan.route.rstrip('/')}",
        tokenizer=workload.model.hf_id,
        prompt=dist(PROMPT),
        output=dist(OUTPUT),
        stages=tuple(Stage(rate=r, duration=cfg.sections.monitoring.load_test.stage_seconds) for r in plan.rates),
        request_timeout_s=gateway_serving.timeout_s(cfg, workload),
        max_in_flight=plan.in_flight,
        bucket=cfg.bucket_name,
        report_path=f"{report_prefix(workload.name)}{TIMESTAMP}",
    )


def build(cfg: StackConfig, catalog: Catalog, opts: pulumi.ResourceOptions, base: pulumi.Output[str]) -> None:
    """One LoadTest per tested workload, after the gateway whose endpoint (`base`) it calls."""
    image = versions.INFERENCE_PERF_IMAGE
    policy = {f"policy.gke-inference.dev/{k}": v for k, v in image_exceptions([image]).items()}
    for name, workload in tested(cfg).items():
        plan = load_plan(cfg.sections.monitoring.load_test, catalog, workload)
        LoadTest(
            account_name(name),
            LoadTestArgs(
                project=cfg.project,
                namespace=workload.config.namespace,
                workload=name,
                bucket=cfg.bucket_name,
                report_prefix=report_prefix(name),
                image=image.ref,
                config=base.apply(partial(perf_config, cfg, workload, plan)),
                checkov_skips=checkov_skips(image),
                annotations=policy,
            ),
            opts,
        )
