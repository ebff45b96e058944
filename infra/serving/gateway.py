"""The Inference Gateway of an environment: which servers it exposes, how, and what a client calls.

vLLM servers go behind an InferencePool and its endpoint picker; JetStream's HTTP front and Triton's
vLLM backend (engines the picker cannot read) behind their Service, with the same health and timeout
policies. A backend's timeout covers `max_context` tokens at a conservative decode rate, with a floor.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import partial

import pulumi
import pulumi_kubernetes as k8s

from components import pathways, triton, vllm
from components.endpoint_picker import CPU_LIMIT_SKIP, EndpointPicker, EndpointPickerArgs
from components.inference_gateway import (
    GATEWAY_NAME,
    GATEWAY_NAMESPACE,
    Backend,
    GatewayArgs,
    IapClient,
    InferenceGateway,
    model_prefix,
)
from components.model_server import checkov_annotations
from components.serving_objects import NAME_LABEL, ROLE_LABEL
from infra import sizing, versions
from infra.config import NAMESPACE as CONFIG_NAMESPACE
from infra.config import StackConfig, Workload
from infra.config.checks.serving import picker_resources
from infra.names import gateway_address_name, stack_prefix
from infra.serving.common import checkov_skips, image_exceptions

NAMESPACE = GATEWAY_NAMESPACE


def exposed(cfg: StackConfig) -> dict[str, Workload]:
    """The workloads behind the gateway: `gateway.routes`, or every real-time server."""
    if not cfg.gateway.enabled:
        return {}
    names = (
        cfg.gateway.routes if cfg.gateway.routes is not None else [n for n, w in cfg.workloads.items() if w.config.batch is None]
    )
    return {n: cfg.workloads[n] for n in names}


def uses_pool(workload: Workload) -> bool:
    """The picker scrapes an engine's metrics on the pool's target port: vLLM serves them there; JetStream's front and
    Triton (metrics on 8002) do not."""
    return workload.config.engine == "vllm"


def timeout_s(cfg: StackConfig, workload: Workload) -> int:
    """Long enough to stream max_context tokens at the configured conservative rate, and never under the floor."""
    gw = cfg.gateway
    return sizing.backend_timeout_s(workload.config.max_context, gw.tokens_per_second, gw.min_timeout_s)


@dataclass(frozen=True)
class Route:
    kind: str
    port: int
    health_path: str


def route_of(workload: Workload) -> Route:
    engine = workload.config.engine
    if engine == "jetstream-pathways":
        return Route("Service", pathways.HTTP_PORT, pathways.HEALTH_PATH)
    if engine == "triton":
        return Route("Service", triton.HTTP_PORT, triton.READY_PATH)
    return Route("InferencePool", vllm.PORT, vllm.HEALTH_PATH)


def pool_selector(workload: Workload, multi_node: bool) -> dict[str, str]:
    return {NAME_LABEL: workload.name, ROLE_LABEL: "leader" if multi_node else "server"}


def example_request(base: str, *, workload: Workload) -> str:
    """A streamed request a client can paste: OpenAI chat for vLLM, KServe v2 generate_stream for Triton (its vLLM
    backend), JetStream's own /generate."""
    auth = '-H "Authorization: Bearer $(gcloud auth print-identity-token)" '
    prefix = f"{base}{model_prefix(workload.model.name)}"
    engine = workload.config.engine
    if engine == "jetstream-pathways":
        body: dict[str, object] = {"prompt": "What are the top 5 programming languages", "max_tokens": 200, "stream": True}
        return f"curl -N {auth}{prefix}generate -d '{json.dumps(body)}'"
    if engine == "triton":
        body = {"text_input": "Hello", "parameters": {"stream": True, "max_tokens": 200}}
        return f"curl -N {auth}{prefix}v2/models/{workload.model.name}/generate_stream -d '{json.dumps(body)}'"
    body = {"model": workload.model.name, "stream": True, "messages": [{"role": "user", "content": "Hello"}]}
    return f"curl -N {auth}-H 'Content-Type: application/json' {prefix}v1/chat/completions -d '{json.dumps(body)}'"


def build(
    cfg: StackConfig,
    gcp_opts: pulumi.ResourceOptions,
    k8s_opts: pulumi.ResourceOptions,
    subnetwork: pulumi.Input[str] | None,
    servers: dict[str, list[pulumi.Resource]],
    multi_node: set[str],
) -> dict[str, pulumi.Input[object]]:
    """Pools and pickers, then the gateway and its routes; the endpoint and one example request per model."""
    gw = cfg.gateway
    objective_crd: tuple[pulumi.Resource, ...] = ()
    if any(w.config.objectives for w in exposed(cfg).values()):
        objective_crd = (k8s.yaml.v2.ConfigFile("inference-objective-crd", file=versions.INFERENCE_OBJECTIVE_CRD, opts=k8s_opts),)
    backends = []
    ingress = tuple(x for x in (cfg.network.proxy_only_cidr,) if x)
    for name, workload in exposed(cfg).items():
        route = route_of(workload)
        ready = list(servers.get(name, []))
        if route.kind == "InferencePool":
            picker = EndpointPicker(
                name,
                EndpointPickerArgs(
                    namespace=workload.config.namespace,
                    selector=pool_selector(workload, name in multi_node),
                    target_port=route.port,
                    image=versions.ENDPOINT_PICKER_IMAGE.ref,
                    scrape_interval=cfg.observability.scrape_interval,
                    ingress_cidrs=ingress,
                    annotations=picker_annotations(),
                    objectives=workload.config.objectives,
                    resources=picker_resources(cfg.gateway.picker),
                    objective_crd=objective_crd,
                ),
                pulumi.ResourceOptions.merge(k8s_opts, pulumi.ResourceOptions(depends_on=ready)),
            )
            ready = picker.ready
        backends.append(
            Backend(
                model=workload.model.name,
                namespace=workload.config.namespace,
                kind=route.kind,  # type: ignore[arg-type]
                name=name,
                port=route.port,
                health_path=route.health_path,
                timeout_s=timeout_s(cfg, workload),
                depends_on=tuple(ready),
            )
        )
    gateway = InferenceGateway(
        GATEWAY_NAME,
        GatewayArgs(
            namespace=NAMESPACE,
            gateway_class=gw.gateway_class,
            address_name=gateway_address_name(stack_prefix(cfg)),
            region=cfg.region,
            subnetwork=subnetwork,
            http_port=gw.listener_port,
            hostname=gw.hostname,
            certificate=gw.tls.certificate if gw.tls else None,
            iap=iap_client(cfg),
            backends=tuple(backends),
        ),
        pulumi.ResourceOptions.merge(gcp_opts, k8s_opts),
    )
    scheme, port = ("https", 443) if gw.tls else ("http", gw.listener_port)
    host = gw.hostname
    default_port = {"http": 80, "https": 443}[scheme]
    base = gateway.ip.apply(lambda ip: f"{scheme}://{host or ip}{'' if port == default_port else f':{port}'}")
    outputs: dict[str, pulumi.Input[object]] = {"gateway_endpoint": base}
    for name, workload in exposed(cfg).items():
        outputs[f"{name}_example"] = base.apply(partial(example_request, workload=workload))
    return outputs


def iap_client(cfg: StackConfig) -> IapClient | None:
    """IAP's OAuth client: the ID from the stack file, the secret from secret config (the checks made both present)."""
    gw = cfg.gateway
    if not gw.iap_enabled:
        return None
    assert gw.iap is not None and gw.iap.client_id is not None
    return IapClient(gw.iap.client_id, pulumi.Config(CONFIG_NAMESPACE).require_secret("iap_client_secret"))


def picker_annotations() -> dict[str, str]:
    """The picker's named exceptions: its token (it watches the API server), its undigested image."""
    image = versions.ENDPOINT_PICKER_IMAGE
    skips = {
        **checkov_skips(image),
        "CKV_K8S_38": "the endpoint picker watches its InferencePool and the pods' readiness through the API server",
        "CKV_K8S_11": CPU_LIMIT_SKIP,
    }
    policy = {f"policy.gke-inference.dev/{k}": v for k, v in image_exceptions([image]).items()}
    return {**checkov_annotations(skips), **policy}
