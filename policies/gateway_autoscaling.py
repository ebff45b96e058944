"""Inference Gateway objects, the proxy-only subnet they need, and HorizontalPodAutoscalers (bad inputs 14, 18)."""

from __future__ import annotations

from collections.abc import Iterator

from pulumi_policy import ResourceValidationArgs, Severity

from policies.base import Config, Meta, as_int, get, items, listed, resource_policy, string_list
from policies.kube import GATEWAY, HPA, INFERENCE_POOL

SUBNETWORK = "gcp:compute/subnetwork:Subnetwork"
REGIONAL_GATEWAY_CLASSES = ("gke-l7-rilb", "gke-l7-regional-external-managed")
"""Regional Envoy-based classes the GKE Inference Gateway supports; both need a proxy-only subnet."""


def _proxy_subnet(args: ResourceValidationArgs, cfg: Config) -> Iterator[str]:
    if get(args.props, "purpose") != "REGIONAL_MANAGED_PROXY":
        return
    role = get(args.props, "role")
    if role != "ACTIVE":
        yield f"role is {role or 'unset'}; a REGIONAL_MANAGED_PROXY subnet needs role ACTIVE"
    if get(args.props, "logConfig") is not None:
        yield "logConfig is set; proxy-only subnets do not support flow logs"


def _hpa_bounds(args: ResourceValidationArgs, cfg: Config) -> Iterator[str]:
    low, high = as_int(get(args.props, "spec.minReplicas")), as_int(get(args.props, "spec.maxReplicas"))
    low = 1 if low is None else low
    if low < 1:
        yield f"spec.minReplicas is {low}; expected at least 1"
    if high is None or high < low:
        yield f"spec.minReplicas {low} > spec.maxReplicas {high}"
    if not items(get(args.props, "spec.metrics")):
        yield "spec.metrics is empty: the HPA falls back to CPU, which says nothing about accelerator load"
    if get(args.props, "spec.behavior.scaleDown.stabilizationWindowSeconds") is None:
        yield "spec.behavior.scaleDown.stabilizationWindowSeconds is not set; replicas that take minutes to load would flap"


def _gateway_class(args: ResourceValidationArgs, cfg: Config) -> Iterator[str]:
    allowed = list(cfg["allowedClasses"])
    name = get(args.props, "spec.gatewayClassName")
    if name not in allowed:
        yield f"spec.gatewayClassName is {name or 'unset'}; expected one of {listed(allowed)}"


def _endpoint_picker(args: ResourceValidationArgs, cfg: Config) -> Iterator[str]:
    ref = get(args.props, "spec.endpointPickerRef")
    if not ref:
        yield "spec.endpointPickerRef is not set: requests are not routed by model-server load"
    elif ref.get("kind", "Service") == "Service" and not get(ref, "port.number"):
        yield "spec.endpointPickerRef.port.number is not set; a Service reference needs the picker's port"
    if not items(get(args.props, "spec.targetPorts")):
        yield "spec.targetPorts is empty"


POLICIES = [
    resource_policy(
        Meta(
            "inf-proxy-subnet-shape",
            "A proxy-only subnet has role ACTIVE and no flow logs.",
            Severity.MEDIUM,
            "Create the REGIONAL_MANAGED_PROXY subnet with role='ACTIVE' and without log_config (components.network does).",
        ),
        [SUBNETWORK],
        _proxy_subnet,
    ),
    resource_policy(
        Meta(
            "inf-k8s-hpa-bounds",
            "HPAs scale between 1 <= minReplicas <= maxReplicas on a server metric, with a scale-down stabilization window.",
            Severity.HIGH,
            "Fix workloads.<name>.autoscaling (min_replicas <= max_replicas) and keep the behavior block the component sets.",
        ),
        [HPA],
        _hpa_bounds,
    ),
    resource_policy(
        Meta(
            "inf-gateway-class",
            "Gateways use a GatewayClass the GKE Inference Gateway supports.",
            Severity.MEDIUM,
            "Set gateway.gateway_class to gke-l7-rilb (internal) or gke-l7-regional-external-managed.",
            params={"allowedClasses": string_list("GatewayClass names this environment may use.", REGIONAL_GATEWAY_CLASSES)},
        ),
        [GATEWAY],
        _gateway_class,
    ),
    resource_policy(
        Meta(
            "inf-inferencepool-endpoint-picker",
            "InferencePools name their endpoint picker (with its port) and at least one target port.",
            Severity.MEDIUM,
            "Set spec.endpointPickerRef {name, port: {number}} and spec.targetPorts on the InferencePool.",
        ),
        [INFERENCE_POOL],
        _endpoint_picker,
    ),
]
