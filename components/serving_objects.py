"""Objects every model server gets beside its workload: PodMonitoring, HPA, PDB and NetworkPolicy.

Shared by the engines so that the scrape port, the HPA's metric and the policies' selectors are
built one way. PodMonitoring is a custom resource: a typed builder emits its camelCase spec.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

import pulumi
import pulumi_kubernetes as k8s

from components.k8s_types import CamelModel

NAME_LABEL = "app.kubernetes.io/name"
ROLE_LABEL = "app.kubernetes.io/component"
MANAGED_BY = {"app.kubernetes.io/managed-by": "pulumi", "app.kubernetes.io/part-of": "gke-inference"}
GOOGLE_HEALTH_CHECK_RANGES = ("35.191.0.0/16", "130.211.0.0/22")
"""Source ranges of Google Cloud load-balancer health checks."""
GMP_NAMESPACE = "gmp-system"
"""Where GKE's Managed Prometheus collectors run: they scrape the metrics port."""
POD_MONITORING_API = "monitoring.googleapis.com/v1"


def adapter_metric(metric: str, kind: Literal["gauge", "counter"] = "gauge") -> str:
    """A Managed Prometheus metric as the Custom Metrics Stackdriver Adapter names it for an HPA: a gauge's latest
    value, or a counter's per-second rate (the adapter aligns CUMULATIVE metrics with ALIGN_RATE)."""
    return f"prometheus.googleapis.com|{metric}|{kind}"


class LabelSelector(CamelModel):
    match_labels: dict[str, str]


class ScrapeEndpoint(CamelModel):
    port: str
    interval: str
    path: str = "/metrics"


class PodMonitoringSpec(CamelModel):
    selector: LabelSelector
    endpoints: tuple[ScrapeEndpoint, ...]


@dataclass(frozen=True)
class Scaling:
    """An HPA on one server metric (AverageValue over the scaled pods), with its behaviour."""

    min_replicas: int
    max_replicas: int
    metric: str
    target: float
    scale_up_period_s: int
    """At most one replica added, or removed, per period: a replica is useful only once it has started."""
    scale_down_window_s: int
    """Stabilization before removing a replica; a removed replica costs its start time to bring back."""
    metric_kind: Literal["gauge", "counter"] = "gauge"
    """A counter is scaled on its per-second rate (e.g. tokens/s), a gauge on its value."""


@dataclass(frozen=True)
class Endpoint:
    """What an engine's component says of its server: the Service, and from it the serving objects."""

    namespace: str
    selector: Mapping[str, str]
    """The pods the Service (and the PodMonitoring) select: the servers, or an LWS's leaders."""
    ports: tuple[tuple[str, int], ...]
    """(name, number) of the Service's ports, each targeting the container port of that name; the first serves."""
    metrics_port: str
    scrape_interval: str
    scale_target: k8s.autoscaling.v2.CrossVersionObjectReferenceArgs
    scaling: Scaling | None
    ingress_cidrs: tuple[str, ...] = ()
    """Where gateway traffic comes from (the proxy-only subnet), besides Google's health checkers."""
    scrapers: tuple[Mapping[str, str], ...] = ()
    """Labels of pods in the namespace that read the serving port (the endpoint picker scrapes /metrics there)."""


@dataclass(frozen=True)
class ServingObjectsArgs:
    workload: str
    endpoint: Endpoint

    @property
    def pod_labels(self) -> dict[str, str]:
        """Labels of every pod of the workload (the PDB and NetworkPolicy select them)."""
        return {NAME_LABEL: self.workload}

    @property
    def serving_port(self) -> str:
        return self.endpoint.ports[0][0]


def pod_monitoring(
    resource_name: str,
    metadata: k8s.meta.v1.ObjectMetaArgs,
    selector: Mapping[str, str],
    port: str,
    interval: str,
    opts: pulumi.ResourceOptions,
) -> k8s.apiextensions.CustomResource:
    """Managed Prometheus scrapes the named port of the selected pods."""
    return k8s.apiextensions.CustomResource(
        resource_name,
        api_version=POD_MONITORING_API,
        kind="PodMonitoring",
        metadata=metadata,
        spec=PodMonitoringSpec(
            selector=LabelSelector(match_labels=dict(selector)), endpoints=(ScrapeEndpoint(port=port, interval=interval),)
        ).to_k8s(),
        opts=opts,
    )


def disruption_budget(
    resource_name: str, metadata: k8s.meta.v1.ObjectMetaArgs, selector: Mapping[str, str], opts: pulumi.ResourceOptions
) -> k8s.policy.v1.PodDisruptionBudget:
    """One pod at a time: node drains and upgrades proceed, a whole serving group never goes at once."""
    return k8s.policy.v1.PodDisruptionBudget(
        resource_name,
        metadata=metadata,
        spec=k8s.policy.v1.PodDisruptionBudgetSpecArgs(
            max_unavailable=1, selector=k8s.meta.v1.LabelSelectorArgs(match_labels=dict(selector))
        ),
        opts=opts,
    )


class ServingObjects(pulumi.ComponentResource):
    """Monitoring, autoscaling and disruption/network guards for one workload."""

    def __init__(self, name: str, args: ServingObjectsArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("gke-inference:k8s:ServingObjects", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        meta = k8s.meta.v1.ObjectMetaArgs(name=args.workload, namespace=args.endpoint.namespace, labels=dict(MANAGED_BY))
        pod_monitoring(
            f"{name}-podmonitoring",
            meta,
            args.endpoint.selector,
            args.endpoint.metrics_port,
            args.endpoint.scrape_interval,
            child,
        )
        if args.endpoint.scaling is not None:
            k8s.autoscaling.v2.HorizontalPodAutoscaler(f"{name}-hpa", metadata=meta, spec=hpa_spec(args), opts=child)
        disruption_budget(f"{name}-pdb", meta, args.pod_labels, child)
        k8s.networking.v1.NetworkPolicy(f"{name}-netpol", metadata=meta, spec=network_policy_spec(args), opts=child)
        self.register_outputs({})


def hpa_spec(args: ServingObjectsArgs) -> k8s.autoscaling.v2.HorizontalPodAutoscalerSpecArgs:
    scaling = args.endpoint.scaling
    assert scaling is not None
    v2 = k8s.autoscaling.v2
    return v2.HorizontalPodAutoscalerSpecArgs(
        scale_target_ref=args.endpoint.scale_target,
        min_replicas=scaling.min_replicas,
        max_replicas=scaling.max_replicas,
        metrics=[
            v2.MetricSpecArgs(
                type="Pods",
                pods=v2.PodsMetricSourceArgs(
                    metric=v2.MetricIdentifierArgs(name=adapter_metric(scaling.metric, scaling.metric_kind)),
                    target=v2.MetricTargetArgs(type="AverageValue", average_value=_quantity(scaling.target)),
                ),
            )
        ],
        behavior=v2.HorizontalPodAutoscalerBehaviorArgs(
            scale_up=v2.HPAScalingRulesArgs(
                stabilization_window_seconds=0,
                select_policy="Max",
                policies=[v2.HPAScalingPolicyArgs(type="Pods", value=1, period_seconds=scaling.scale_up_period_s)],
            ),
            scale_down=v2.HPAScalingRulesArgs(
                stabilization_window_seconds=scaling.scale_down_window_s,
                select_policy="Min",
                policies=[v2.HPAScalingPolicyArgs(type="Pods", value=1, period_seconds=scaling.scale_up_period_s)],
            ),
        ),
    )


def _quantity(value: float) -> str:
    """A Kubernetes quantity: whole numbers as-is, fractions in milli-units (0.5 -> 500m)."""
    return str(int(value)) if float(value).is_integer() else f"{round(value * 1000)}m"


def network_policy_spec(args: ServingObjectsArgs) -> k8s.networking.v1.NetworkPolicySpecArgs:
    """Ingress only from: the workload's own pods (all ports), the gateway's proxies and Google's health checkers
    (serving port), the endpoint picker when there is one (serving port), and the Managed Prometheus collectors (metrics port)."""
    net = k8s.networking.v1
    pods = k8s.meta.v1.LabelSelectorArgs(match_labels=dict(args.pod_labels))
    serving = [net.NetworkPolicyPortArgs(port=args.serving_port, protocol="TCP")]
    sources = [
        net.NetworkPolicyPeerArgs(ip_block=net.IPBlockArgs(cidr=c))
        for c in (*args.endpoint.ingress_cidrs, *GOOGLE_HEALTH_CHECK_RANGES)
    ]
    sources += [
        net.NetworkPolicyPeerArgs(pod_selector=k8s.meta.v1.LabelSelectorArgs(match_labels=dict(s)))
        for s in args.endpoint.scrapers
    ]
    collectors = net.NetworkPolicyPeerArgs(
        namespace_selector=k8s.meta.v1.LabelSelectorArgs(match_labels={"kubernetes.io/metadata.name": GMP_NAMESPACE})
    )
    return net.NetworkPolicySpecArgs(
        pod_selector=pods,
        policy_types=["Ingress"],
        ingress=[
            net.NetworkPolicyIngressRuleArgs(from_=[net.NetworkPolicyPeerArgs(pod_selector=pods)]),
            net.NetworkPolicyIngressRuleArgs(from_=sources, ports=serving),
            net.NetworkPolicyIngressRuleArgs(
                from_=[collectors], ports=[net.NetworkPolicyPortArgs(port=args.endpoint.metrics_port, protocol="TCP")]
            ),
        ],
    )


def serve(
    parent: pulumi.Resource, name: str, e: Endpoint, labels: Mapping[str, str], after: list[pulumi.Resource]
) -> k8s.core.v1.Service:
    """The Service `<name>` and ServingObjects `<name>` (created after `after`), parented to the engine's component."""
    service = k8s.core.v1.Service(
        f"{name}-svc",
        metadata=k8s.meta.v1.ObjectMetaArgs(name=name, namespace=e.namespace, labels=dict(labels)),
        spec=k8s.core.v1.ServiceSpecArgs(
            type="ClusterIP",
            selector=dict(e.selector),
            ports=[k8s.core.v1.ServicePortArgs(name=n, port=port, target_port=n, protocol="TCP") for n, port in e.ports],
        ),
        opts=pulumi.ResourceOptions(parent=parent),
    )
    ServingObjects(name, ServingObjectsArgs(workload=name, endpoint=e), pulumi.ResourceOptions(parent=parent, depends_on=after))
    return service
