"""The environment's one Gateway, a route per exposed model, and the GKE policies of each backend.

Every model is served under `/models/<model>/` on one host; a URLRewrite strips the prefix, so an
OpenAI client uses `https://<host>/models/<model>/v1` as its base URL and the server sees `/v1/...`.
(Routing on the request body's `model` field needs llm-d's payload processor, which publishes no
release to pin.) Each backend is an InferencePool (vLLM: the endpoint picker balances it) or a plain
Service (JetStream, Triton's vLLM backend: engines the picker cannot read), and gets a
HealthCheckPolicy on the port and path its server answers and a GCPBackendPolicy with a timeout
long enough for a streamed answer and request logging. GKE rejects HTTPRoute `timeouts` on its
Gateways, so the timeout lives in the GCPBackendPolicy.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import pulumi
import pulumi_gcp as gcp
import pulumi_kubernetes as k8s

from components import gateway_types as gt
from components.serving_namespace import ROUTES_LABEL

GATEWAY_NAMESPACE = "inference-gateway"
"""The namespace of the environment's one Gateway."""
GATEWAY_NAME = "inference"
GATEWAY_API = "gateway.networking.k8s.io/v1"
POLICY_API = "networking.gke.io/v1"
CERT_OPTION = "networking.gke.io/cert-manager-certs"


@dataclass(frozen=True)
class Backend:
    """One exposed model and where its requests go."""

    model: str
    namespace: str
    kind: Literal["InferencePool", "Service"]
    name: str
    port: int
    health_path: str
    timeout_s: int
    depends_on: tuple[pulumi.Resource, ...] = ()


@dataclass(frozen=True)
class IapClient:
    """The OAuth client IAP signs users in with; the secret reaches the cluster only as a Secret's data."""

    client_id: str
    client_secret: pulumi.Input[str]


IAP_SECRET_KEY = "key"
"""The data key GKE reads the OAuth client secret from (GKE's "Configure IAP" for Gateway: `--from-literal=key=`)."""


@dataclass(frozen=True)
class GatewayArgs:
    namespace: str
    gateway_class: str
    address_name: str
    """The regional address reserved for the Gateway (its endpoint is known before the Gateway exists)."""
    region: str
    subnetwork: pulumi.Input[str] | None
    """The node subnet, where an internal gateway's address is reserved."""
    http_port: int
    hostname: str | None
    certificate: str | None
    """Certificate Manager certificate: an HTTPS listener on 443; None: HTTP only (dev, or an internal gateway)."""
    iap: IapClient | None
    """IAP on every backend (None: off)."""
    backends: tuple[Backend, ...]


def model_prefix(model: str) -> str:
    return f"/models/{model}/"


def listener(args: GatewayArgs) -> gt.Listener:
    allowed = gt.AllowedRoutes(namespaces=gt.RouteNamespaces(selector=gt.LabelMatch(match_labels={ROUTES_LABEL: "true"})))
    if args.certificate:
        return gt.Listener(
            name="https",
            port=443,
            protocol="HTTPS",
            hostname=args.hostname,
            tls=gt.ListenerTls(options={CERT_OPTION: args.certificate}),
            allowed_routes=allowed,
        )
    return gt.Listener(name="http", port=args.http_port, protocol="HTTP", hostname=args.hostname, allowed_routes=allowed)


def backend_ref(b: Backend) -> gt.BackendRef:
    if b.kind == "InferencePool":
        return gt.BackendRef(group="inference.networking.k8s.io", kind="InferencePool", name=b.name)
    return gt.BackendRef(kind="Service", name=b.name, port=b.port)


def target_ref(b: Backend) -> gt.TargetRef:
    return gt.TargetRef(group="inference.networking.k8s.io" if b.kind == "InferencePool" else "", kind=b.kind, name=b.name)


def route_spec(args: GatewayArgs, gateway: str, b: Backend) -> gt.HttpRouteSpec:
    """/models/<model>/... to the backend, as /... (the URLRewrite strips the prefix)."""
    return gt.HttpRouteSpec(
        parent_refs=(gt.ParentRef(name=gateway, namespace=args.namespace, section_name=listener(args).name),),
        hostnames=(args.hostname,) if args.hostname else None,
        rules=(
            gt.RouteRule(
                matches=(gt.RouteMatch(path=gt.PathMatch(value=model_prefix(b.model))),),
                filters=(gt.RouteFilter(url_rewrite=gt.UrlRewrite(path=gt.PathRewrite(replace_prefix_match="/"))),),
                backend_refs=(backend_ref(b),),
            ),
        ),
    )


def health_spec(b: Backend) -> gt.HealthCheckPolicySpec:
    return gt.HealthCheckPolicySpec(
        target_ref=target_ref(b),
        default=gt.HealthCheckDefault(
            check_interval_sec=5,
            timeout_sec=5,
            log_config=gt.LogConfig(enabled=True),
            config=gt.HealthCheckConfig(http_health_check=gt.HttpHealthCheck(request_path=b.health_path, port=b.port)),
        ),
    )


def iap_secret_name(gateway: str) -> str:
    return f"{gateway}-iap-oauth-client"


def backend_spec(b: Backend, iap: IapClient | None, gateway: str) -> gt.BackendPolicySpec:
    return gt.BackendPolicySpec(
        target_ref=target_ref(b),
        default=gt.BackendDefault(
            timeout_sec=b.timeout_s,
            logging=gt.BackendLogging(enabled=True, sample_rate=1_000_000),
            iap=gt.Iap(client_id=iap.client_id, oauth2_client_secret=gt.SecretRef(name=iap_secret_name(gateway)))
            if iap
            else None,
        ),
    )


class InferenceGateway(pulumi.ComponentResource):
    """Its regional address, namespace and Gateway, and per backend: HTTPRoute, HealthCheckPolicy, GCPBackendPolicy.

    Takes both providers in `opts`: the address is a GCP resource, everything else Kubernetes."""

    ip: pulumi.Output[str]

    def __init__(self, name: str, args: GatewayArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("gke-inference:gateway:InferenceGateway", name, None, opts)
        meta = k8s.meta.v1
        child = pulumi.ResourceOptions(parent=self)
        # The Gateway's own namespace stays with it in the serving stack (no bucket IAM needs it); its URN is the one
        # the single-stack program gave it, so an environment split from one stack keeps it (infra/tooling/migration.py).
        namespace = k8s.core.v1.Namespace(
            f"{name}-ns",
            metadata=meta.ObjectMetaArgs(
                name=args.namespace,
                labels={"app.kubernetes.io/managed-by": "pulumi", "pod-security.kubernetes.io/enforce": "restricted"},
            ),
            opts=child,
        )
        internal = args.gateway_class == "gke-l7-rilb"
        address = gcp.compute.Address(
            f"{name}-address",
            name=args.address_name,
            region=args.region,
            address_type="INTERNAL" if internal else "EXTERNAL",
            subnetwork=args.subnetwork if internal else None,
            # Regional external Application Load Balancers take Standard-tier addresses.
            network_tier=None if internal else "STANDARD",
            opts=child,
        )
        gateway = k8s.apiextensions.CustomResource(
            f"{name}-gateway",
            api_version=GATEWAY_API,
            kind="Gateway",
            metadata=meta.ObjectMetaArgs(name=name, namespace=args.namespace),
            spec=gt.GatewaySpec(
                gateway_class_name=args.gateway_class,
                listeners=(listener(args),),
                addresses=(gt.GatewayAddress(value=args.address_name),),
            ).to_k8s(),
            opts=pulumi.ResourceOptions(parent=self, depends_on=[namespace, address]),
        )
        iap_secrets: dict[str, k8s.core.v1.Secret] = {}
        for b in args.backends:
            if args.iap and b.namespace not in iap_secrets:
                # The policy reads the client secret from its own namespace: one Secret per backend namespace.
                iap_secrets[b.namespace] = k8s.core.v1.Secret(
                    f"{name}-iap-{b.namespace}",
                    metadata=meta.ObjectMetaArgs(name=iap_secret_name(name), namespace=b.namespace),
                    type="Opaque",
                    string_data={IAP_SECRET_KEY: args.iap.client_secret},
                    opts=pulumi.ResourceOptions(parent=self, depends_on=list(b.depends_on)),
                )
            route = b.model.replace(".", "-")
            k8s.apiextensions.CustomResource(
                f"{name}-route-{route}",
                api_version=GATEWAY_API,
                kind="HTTPRoute",
                metadata=meta.ObjectMetaArgs(name=route, namespace=b.namespace),
                spec=route_spec(args, name, b).to_k8s(),
                # Pools and pickers first: a route to a missing backend is programmed as an error.
                opts=pulumi.ResourceOptions(parent=self, depends_on=[gateway, *b.depends_on]),
            )
            after = pulumi.ResourceOptions(parent=self, depends_on=list(b.depends_on))
            k8s.apiextensions.CustomResource(
                f"{name}-health-{route}",
                api_version=POLICY_API,
                kind="HealthCheckPolicy",
                metadata=meta.ObjectMetaArgs(name=b.name, namespace=b.namespace),
                spec=health_spec(b).to_k8s(),
                opts=after,
            )
            k8s.apiextensions.CustomResource(
                f"{name}-backend-{route}",
                api_version=POLICY_API,
                kind="GCPBackendPolicy",
                metadata=meta.ObjectMetaArgs(name=b.name, namespace=b.namespace),
                spec=backend_spec(b, args.iap, name).to_k8s(),
                opts=pulumi.ResourceOptions(
                    parent=self, depends_on=[*b.depends_on, *([iap_secrets[b.namespace]] if args.iap else [])]
                ),
            )
        self.ip = address.address
        self.register_outputs({"ip": self.ip})
