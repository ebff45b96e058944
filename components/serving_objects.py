"""Objects every model server gets beside its workload: PodMonitoring, HPA, PDB and NetworkPolicy.

Shared by the engines so that the scrape port, the HPA's metric and the policies' selectors are
built one way. PodMonitoring is a custom resource: a typed builder emits its camelCase spec.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

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


def adapter_metric(metric: str) -> str:
    """A Managed Prometheus gauge as the Custom Metrics Stackdriver Adapter names it for an HPA."""
    return f"prometheus.googleapis.com|{metric}|gauge"


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
    """At most one replica added per period: a replica is useful only once it has started."""
    scale_down_window_s: int
    """Stabilization before removing a replica; a removed replica costs its start time to bring back."""


@dataclass(frozen=True)
class ServingObjectsArgs:
    namespace: str
    workload: str
    pod_labels: Mapping[str, str]
    """Labels of every pod of the workload (the PDB and NetworkPolicy select them)."""
    metrics_labels: Mapping[str, str]
    """Labels of the pods exposing the metric (for an LWS: the leader, whose metric the HPA reads)."""
    serving_port: str
    metrics_port: str
    scrape_interval: str
    scale_target: k8s.autoscaling.v2.CrossVersionObjectReferenceArgs
    scaling: Scaling | None
    ingress_cidrs: tuple[str, ...] = ()
    """Where gateway traffic comes from (the proxy-only subnet), besides Google's health checkers."""
    scrapers: tuple[Mapping[str, str], ...] = ()
    """Labels of pods in the namespace that read the serving port (the endpoint picker scrapes /metrics there)."""


class ServingObjects(pulumi.ComponentResource):
    """Monitoring, autoscaling and disruption/network guards for one workload."""

    def __init__(self, name: str, args: ServingObjectsArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("gke-inference:k8s:ServingObjects", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        meta = k8s.meta.v1.ObjectMetaArgs(name=args.workload, namespace=args.namespace, labels=dict(MANAGED_BY))
        k8s.apiextensions.CustomResource(
            f"{name}-podmonitoring",
            api_version=POD_MONITORING_API,
            kind="PodMonitoring",
            metadata=meta,
            spec=PodMonitoringSpec(
                selector=LabelSelector(match_labels=dict(args.metrics_labels)),
                endpoints=(ScrapeEndpoint(port=args.metrics_port, interval=args.scrape_interval),),
            ).to_k8s(),
            opts=child,
        )
        if args.scaling is not None:
            k8s.autoscaling.v2.HorizontalPodAutoscaler(f"{name}-hpa", metadata=meta, spec=hpa_spec(args), opts=child)
        k8s.policy.v1.PodDisruptionBudget(
            f"{name}-pdb",
            metadata=meta,
            # One pod at a time: node drains and upgrades proceed, a whole serving group never goes at once.
            spec=k8s.policy.v1.PodDisruptionBudgetSpecArgs(
                max_unavailable=1, selector=k8s.meta.v1.LabelSelectorArgs(match_labels=dict(args.pod_labels))
            ),
            opts=child,
        )
        k8s.networking.v1.NetworkPolicy(f"{name}-netpol", metadata=meta, spec=network_policy_spec(args), opts=child)
        self.register_outputs({})


def hpa_spec(args: ServingObjectsArgs) -> k8s.autoscaling.v2.HorizontalPodAutoscalerSpecArgs:
    scaling = args.scaling
    assert scaling is not None
    v2 = k8s.autoscaling.v2
    return v2.HorizontalPodAutoscalerSpecArgs(
        scale_target_ref=args.scale_target,
        min_replicas=scaling.min_replicas,
        max_replicas=scaling.max_replicas,
        metrics=[
            v2.MetricSpecArgs(
                type="Pods",
                pods=v2.PodsMetricSourceArgs(
                    metric=v2.MetricIdentifierArgs(name=adapter_metric(scaling.metric)),
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
        net.NetworkPolicyPeerArgs(ip_block=net.IPBlockArgs(cidr=c)) for c in (*args.ingress_cidrs, *GOOGLE_HEALTH_CHECK_RANGES)
    ]
    sources += [
        net.NetworkPolicyPeerArgs(pod_selector=k8s.meta.v1.LabelSelectorArgs(match_labels=dict(s))) for s in args.scrapers
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
                from_=[collectors], ports=[net.NetworkPolicyPortArgs(port=args.metrics_port, protocol="TCP")]
            ),
        ],
    )


@dataclass(frozen=True)
class Endpoint:
    """A server's ClusterIP Service and its serving objects: what every engine's component renders the same way."""

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
    scrapers: tuple[Mapping[str, str], ...] = ()


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
    ServingObjects(
        name,
        ServingObjectsArgs(
            namespace=e.namespace,
            workload=name,
            pod_labels={NAME_LABEL: name},
            metrics_labels=e.selector,
            serving_port=e.ports[0][0],
            metrics_port=e.metrics_port,
            scrape_interval=e.scrape_interval,
            scale_target=e.scale_target,
            scaling=e.scaling,
            ingress_cidrs=e.ingress_cidrs,
            scrapers=e.scrapers,
        ),
        pulumi.ResourceOptions(parent=parent, depends_on=after),
    )
    return service
