"""An InferencePool and its endpoint picker (EPP): the Inference Gateway's model-aware load balancing.

Objects as llm-d-router v0.10.0's chart renders them (`config/charts/routerlib`), written as typed
resources: the pool (`inference.networking.k8s.io/v1`), the EPP Deployment, its Service (ext-proc on
9002 for the gateway, metrics on 9090), service account and namespaced RBAC, and the scheduling
config. The picker scores a model server by its queue, KV-cache use and prefix-cache hits, read from
the server's own /metrics.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal

import pulumi
import pulumi_kubernetes as k8s
import yaml

from components.k8s_types import CamelModel
from components.pod_security import restricted_container, restricted_pod
from components.serving_objects import (
    GMP_NAMESPACE,
    GOOGLE_HEALTH_CHECK_RANGES,
    LabelSelector,
    disruption_budget,
    pod_monitoring,
)

POOL_API = "inference.networking.k8s.io/v1"
OBJECTIVE_API = "llm-d.ai/v1alpha2"
EXT_PROC_PORT, HEALTH_PORT, METRICS_PORT = 9002, 9003, 9090
"""The gateway's proxies call ext-proc on 9002; GKE's gateway controller health-checks the picker over gRPC on 9003
(llm-d-router v0.10.0 `config/charts/llm-d-router-gateway/templates/gke.yaml`: "The GKE gateway controller
health-checks the EPP backend on gRPC port 9003 by default", so the chart renders no HealthCheckPolicy for it)."""
RUN_AS = 65532
"""The EPP image is distroless; it runs as its `nonroot` user."""
FAILURE_MODE: Literal["FailOpen", "FailClose"] = "FailOpen"
"""When the picker cannot answer, the gateway sends the request to a pool endpoint of its own choosing rather than
failing it: a picker restart costs scheduling quality for seconds, not an outage (the chart's choice too)."""
PLUGINS = {
    "apiVersion": "llm-d.ai/v1alpha1",
    "kind": "EndpointPickerConfig",
    "plugins": [
        {"type": "queue-scorer"},
        {"type": "kv-cache-utilization-scorer"},
        {"type": "prefix-cache-scorer"},
        {"type": "metrics-data-source", "parameters": {"scheme": "http", "path": "/metrics", "insecureSkipVerify": True}},
        {"type": "core-metrics-extractor"},
    ],
    "schedulingProfiles": [
        {
            "name": "default",
            "plugins": [
                {"pluginRef": "queue-scorer", "weight": 2},
                {"pluginRef": "kv-cache-utilization-scorer", "weight": 2},
                {"pluginRef": "prefix-cache-scorer", "weight": 3},
            ],
        }
    ],
}
"""llm-d-router v0.10.0's default EndpointPickerConfig (routerlib `_config.yaml`); vLLM is its default engine."""


class TargetPort(CamelModel):
    number: int


class PortRef(CamelModel):
    number: int


class EndpointPickerRef(CamelModel):
    name: str
    port: PortRef
    failure_mode: Literal["FailOpen", "FailClose"]


class InferencePoolSpec(CamelModel):
    selector: LabelSelector
    target_ports: tuple[TargetPort, ...]
    endpoint_picker_ref: EndpointPickerRef


class PoolRef(CamelModel):
    group: str = "inference.networking.k8s.io"
    kind: Literal["InferencePool"] = "InferencePool"
    name: str


class InferenceObjectiveSpec(CamelModel):
    pool_ref: PoolRef
    priority: int


@dataclass(frozen=True)
class PickerResources:
    """The picker container's requests and memory limit; no CPU limit, as the chart ("CPU limits unset for burst
    capacity": the picker scores every request on the hot path)."""

    cpu_millis: int
    memory_mib: int
    memory_limit_mib: int


CHART_RESOURCES = PickerResources(cpu_millis=8000, memory_mib=8192, memory_limit_mib=16384)
"""llm-d-router v0.10.0 `config/charts/routerlib/values.yaml` (l. 59-65): requests cpu "8", memory 8Gi; limits
memory 16Gi. Nothing in the chart's templates overrides it."""
CPU_LIMIT_SKIP = "the llm-d-router chart leaves the endpoint picker's CPU limit unset for burst capacity (routerlib values.yaml)"


@dataclass(frozen=True)
class EndpointPickerArgs:
    namespace: str
    selector: Mapping[str, str]
    """Labels of the model-server pods the pool holds (for an LWS, the leaders)."""
    target_port: int
    image: str
    scrape_interval: str
    ingress_cidrs: tuple[str, ...]
    """Where the gateway's proxies call the picker from (the proxy-only subnet)."""
    resources: PickerResources = field(default_factory=lambda: CHART_RESOURCES)
    annotations: Mapping[str, str] = field(default_factory=dict)
    objectives: Mapping[str, int] = field(default_factory=dict)
    """Objective -> priority; a request names `<pool>-<objective>` in the x-llm-d-inference-objective header."""
    objective_crd: tuple[pulumi.Resource, ...] = ()


def picker_name(pool: str) -> str:
    """The picker's objects (Deployment, Service, ServiceAccount, Role, ConfigMap, ...) in the pool's namespace."""
    return f"{pool}-epp"


def objective_name(pool: str, objective: str) -> str:
    """An InferenceObjective: looked up by name in the namespace, so prefixed with its pool."""
    return f"{pool}-{objective}"


def picker_labels(pool: str) -> dict[str, str]:
    return {"app.kubernetes.io/name": picker_name(pool), "app.kubernetes.io/component": "endpoint-picker"}


class EndpointPicker(pulumi.ComponentResource):
    """InferencePool `<name>` and its picker `<name>-epp`."""

    ready: list[pulumi.Resource]
    """The pool and its picker's Service: routes to the pool are created after them."""

    def __init__(self, name: str, args: EndpointPickerArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("gke-inference:gateway:EndpointPicker", name, None, opts)
        core, meta, rbac = k8s.core.v1, k8s.meta.v1, k8s.rbac.v1
        child = pulumi.ResourceOptions(parent=self)
        epp, ns = picker_name(name), args.namespace
        labels = picker_labels(name)
        managed = {"app.kubernetes.io/managed-by": "pulumi", "app.kubernetes.io/part-of": "gke-inference"}
        account = core.ServiceAccount(f"{name}-epp-sa", metadata=meta.ObjectMetaArgs(name=epp, namespace=ns), opts=child)
        role = rbac.Role(
            f"{name}-epp-role",
            metadata=meta.ObjectMetaArgs(name=epp, namespace=ns),
            rules=[
                rbac.PolicyRuleArgs(api_groups=[""], resources=["pods"], verbs=["get", "watch", "list"]),
                rbac.PolicyRuleArgs(
                    api_groups=["inference.networking.k8s.io"], resources=["inferencepools"], verbs=["get", "watch", "list"]
                ),
                rbac.PolicyRuleArgs(
                    api_groups=["llm-d.ai", "inference.networking.x-k8s.io"],
                    resources=["inferenceobjectives", "inferencemodelrewrites"],
                    verbs=["get", "watch", "list"],
                ),
            ],
            opts=child,
        )
        binding = rbac.RoleBinding(
            f"{name}-epp-binding",
            metadata=meta.ObjectMetaArgs(name=epp, namespace=ns),
            role_ref=rbac.RoleRefArgs(api_group="rbac.authorization.k8s.io", kind="Role", name=role.metadata.name),
            subjects=[rbac.SubjectArgs(kind="ServiceAccount", name=epp, namespace=ns)],
            opts=child,
        )
        config = core.ConfigMap(
            f"{name}-epp-config",
            metadata=meta.ObjectMetaArgs(name=epp, namespace=ns),
            data={"default-plugins.yaml": yaml.safe_dump(PLUGINS, sort_keys=False)},
            opts=child,
        )
        health = core.GRPCActionArgs(port=HEALTH_PORT, service="inference-extension")
        k8s.apps.v1.Deployment(
            f"{name}-epp-deployment",
            metadata=meta.ObjectMetaArgs(name=epp, namespace=ns, labels=managed, annotations=dict(args.annotations) or None),
            spec=k8s.apps.v1.DeploymentSpecArgs(
                replicas=1,
                # One picker per pool; Recreate, as the chart: two pickers without leader election would disagree.
                strategy=k8s.apps.v1.DeploymentStrategyArgs(type="Recreate"),
                selector=meta.LabelSelectorArgs(match_labels=labels),
                template=core.PodTemplateSpecArgs(
                    metadata=meta.ObjectMetaArgs(labels=labels),
                    spec=core.PodSpecArgs(
                        service_account_name=epp,
                        # It watches pods and its InferencePool through the API server.
                        automount_service_account_token=True,
                        termination_grace_period_seconds=130,
                        security_context=restricted_pod(RUN_AS),
                        containers=[
                            core.ContainerArgs(
                                name="epp",
                                image=args.image,
                                image_pull_policy="IfNotPresent",
                                args=[
                                    f"--pool-name={name}",
                                    f"--pool-namespace={ns}",
                                    "--pool-group=inference.networking.k8s.io",
                                    "--zap-encoder=json",
                                    "--config-file=/config/default-plugins.yaml",
                                    f"--grpc-health-port={HEALTH_PORT}",
                                    "--tracing=false",
                                    # Managed Prometheus scrapes without a token; the NetworkPolicy admits only its collectors.
                                    "--metrics-endpoint-auth=false",
                                ],
                                env=[
                                    core.EnvVarArgs(
                                        name="NAMESPACE",
                                        value_from=core.EnvVarSourceArgs(
                                            field_ref=core.ObjectFieldSelectorArgs(field_path="metadata.namespace")
                                        ),
                                    ),
                                    core.EnvVarArgs(
                                        name="POD_NAME",
                                        value_from=core.EnvVarSourceArgs(
                                            field_ref=core.ObjectFieldSelectorArgs(field_path="metadata.name")
                                        ),
                                    ),
                                ],
                                ports=[
                                    core.ContainerPortArgs(name="grpc", container_port=EXT_PROC_PORT, protocol="TCP"),
                                    core.ContainerPortArgs(name="grpc-health", container_port=HEALTH_PORT, protocol="TCP"),
                                    core.ContainerPortArgs(name="metrics", container_port=METRICS_PORT, protocol="TCP"),
                                ],
                                resources=core.ResourceRequirementsArgs(
                                    requests={"cpu": f"{args.resources.cpu_millis}m", "memory": f"{args.resources.memory_mib}Mi"},
                                    limits={"memory": f"{args.resources.memory_limit_mib}Mi"},
                                ),
                                security_context=restricted_container(),
                                liveness_probe=core.ProbeArgs(grpc=health, initial_delay_seconds=5, period_seconds=10),
                                readiness_probe=core.ProbeArgs(grpc=health, period_seconds=2),
                                volume_mounts=[core.VolumeMountArgs(name="plugins-config", mount_path="/config", read_only=True)],
                            )
                        ],
                        volumes=[core.VolumeArgs(name="plugins-config", config_map=core.ConfigMapVolumeSourceArgs(name=epp))],
                    ),
                ),
            ),
            opts=pulumi.ResourceOptions(parent=self, depends_on=[account, binding, config]),
        )
        service = core.Service(
            f"{name}-epp-svc",
            metadata=meta.ObjectMetaArgs(name=epp, namespace=ns, labels=managed),
            spec=core.ServiceSpecArgs(
                type="ClusterIP",
                selector=labels,
                ports=[
                    core.ServicePortArgs(
                        name="grpc-ext-proc",
                        port=EXT_PROC_PORT,
                        target_port="grpc",
                        protocol="TCP",
                        app_protocol="kubernetes.io/h2c",
                    ),
                    core.ServicePortArgs(name="http-metrics", port=METRICS_PORT, target_port="metrics", protocol="TCP"),
                ],
            ),
            opts=child,
        )
        pool = k8s.apiextensions.CustomResource(
            f"{name}-pool",
            api_version=POOL_API,
            kind="InferencePool",
            metadata=meta.ObjectMetaArgs(name=name, namespace=ns, labels=managed),
            spec=InferencePoolSpec(
                selector=LabelSelector(match_labels=dict(args.selector)),
                target_ports=(TargetPort(number=args.target_port),),
                endpoint_picker_ref=EndpointPickerRef(name=epp, port=PortRef(number=EXT_PROC_PORT), failure_mode=FAILURE_MODE),
            ).to_k8s(),
            opts=pulumi.ResourceOptions(parent=self, depends_on=[service]),
        )
        pod_monitoring(
            f"{name}-epp-podmonitoring",
            meta.ObjectMetaArgs(name=epp, namespace=ns, labels=managed),
            labels,
            "metrics",
            args.scrape_interval,
            child,
        )
        disruption_budget(f"{name}-epp-pdb", meta.ObjectMetaArgs(name=epp, namespace=ns), labels, child)
        net = k8s.networking.v1

        def cidrs(blocks: tuple[str, ...]) -> list[k8s.networking.v1.NetworkPolicyPeerArgs]:
            return [net.NetworkPolicyPeerArgs(ip_block=net.IPBlockArgs(cidr=c)) for c in blocks]

        collectors = net.NetworkPolicyPeerArgs(
            namespace_selector=meta.LabelSelectorArgs(match_labels={"kubernetes.io/metadata.name": GMP_NAMESPACE})
        )
        net.NetworkPolicy(
            f"{name}-epp-netpol",
            metadata=meta.ObjectMetaArgs(name=epp, namespace=ns),
            spec=net.NetworkPolicySpecArgs(
                pod_selector=meta.LabelSelectorArgs(match_labels=labels),
                policy_types=["Ingress"],
                ingress=[
                    # Each port admits exactly its caller: the proxies ext-proc, Google's health checkers the gRPC health.
                    net.NetworkPolicyIngressRuleArgs(
                        from_=cidrs(args.ingress_cidrs), ports=[net.NetworkPolicyPortArgs(port=EXT_PROC_PORT, protocol="TCP")]
                    ),
                    net.NetworkPolicyIngressRuleArgs(
                        from_=cidrs(GOOGLE_HEALTH_CHECK_RANGES),
                        ports=[net.NetworkPolicyPortArgs(port=HEALTH_PORT, protocol="TCP")],
                    ),
                    net.NetworkPolicyIngressRuleArgs(
                        from_=[collectors], ports=[net.NetworkPolicyPortArgs(port=METRICS_PORT, protocol="TCP")]
                    ),
                ],
            ),
            opts=child,
        )
        for objective, priority in sorted(args.objectives.items()):
            k8s.apiextensions.CustomResource(
                f"{name}-objective-{objective}",
                api_version=OBJECTIVE_API,
                kind="InferenceObjective",
                # Objectives are looked up by name in the namespace: prefixed with the pool, two pools may each have "bulk".
                metadata=meta.ObjectMetaArgs(name=objective_name(name, objective), namespace=ns, labels=managed),
                spec=InferenceObjectiveSpec(pool_ref=PoolRef(name=name), priority=priority).to_k8s(),
                opts=pulumi.ResourceOptions(parent=self, depends_on=[pool, *args.objective_crd]),
            )
        self.ready = [pool, service]
        self.register_outputs({})
