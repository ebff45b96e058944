"""Typed builders for the Gateway API and GKE policy objects the Inference Gateway renders (camelCase out)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from components.k8s_types import CamelModel


class LabelMatch(CamelModel):
    match_labels: dict[str, str]


class RouteNamespaces(CamelModel):
    from_: Literal["Selector"] = Field("Selector", alias="from")
    selector: LabelMatch


class AllowedRoutes(CamelModel):
    namespaces: RouteNamespaces


class ListenerTls(CamelModel):
    mode: Literal["Terminate"] = "Terminate"
    options: dict[str, str]


class Listener(CamelModel):
    name: str
    port: int
    protocol: Literal["HTTP", "HTTPS"]
    hostname: str | None = None
    tls: ListenerTls | None = None
    allowed_routes: AllowedRoutes


class GatewayAddress(CamelModel):
    type: Literal["NamedAddress"] = "NamedAddress"
    value: str


class GatewaySpec(CamelModel):
    gateway_class_name: str
    listeners: tuple[Listener, ...]
    addresses: tuple[GatewayAddress, ...] | None = None


class ParentRef(CamelModel):
    name: str
    namespace: str
    section_name: str


class PathMatch(CamelModel):
    type: Literal["PathPrefix"] = "PathPrefix"
    value: str


class RouteMatch(CamelModel):
    path: PathMatch


class PathRewrite(CamelModel):
    type: Literal["ReplacePrefixMatch"] = "ReplacePrefixMatch"
    replace_prefix_match: str


class UrlRewrite(CamelModel):
    path: PathRewrite


class RouteFilter(CamelModel):
    type: Literal["URLRewrite"] = "URLRewrite"
    url_rewrite: UrlRewrite


class BackendRef(CamelModel):
    group: str | None = None
    kind: Literal["InferencePool", "Service"]
    name: str
    port: int | None = None


class RouteRule(CamelModel):
    matches: tuple[RouteMatch, ...]
    filters: tuple[RouteFilter, ...]
    backend_refs: tuple[BackendRef, ...]


class HttpRouteSpec(CamelModel):
    parent_refs: tuple[ParentRef, ...]
    hostnames: tuple[str, ...] | None = None
    rules: tuple[RouteRule, ...]


class TargetRef(CamelModel):
    group: str
    kind: Literal["InferencePool", "Service"]
    name: str


class HttpHealthCheck(CamelModel):
    """GoogleCloudPlatform/gke-gateway-api @fc40d606 `config/crd/networking.gke.io_healthcheckpolicies.yaml`: a
    `port` is allowed only with `portSpecification: USE_FIXED_PORT` (the default, USE_SERVING_PORT, forbids it, and
    the CEL rules read `portSpecification` unguarded, so leaving it out fails admission)."""

    request_path: str
    port_specification: Literal["USE_FIXED_PORT"] = "USE_FIXED_PORT"
    port: int


class HealthCheckConfig(CamelModel):
    type: Literal["HTTP"] = "HTTP"
    http_health_check: HttpHealthCheck


class LogConfig(CamelModel):
    enabled: bool


class HealthCheckDefault(CamelModel):
    check_interval_sec: int
    timeout_sec: int
    log_config: LogConfig
    config: HealthCheckConfig


class HealthCheckPolicySpec(CamelModel):
    target_ref: TargetRef
    default: HealthCheckDefault


class BackendLogging(CamelModel):
    enabled: bool
    sample_rate: int
    """Out of 1,000,000: every request is logged."""


class SecretRef(CamelModel):
    name: str


class Iap(CamelModel):
    """gke-gateway-api @fc40d606 `gcpbackendpolicy_types.go`: when enabled, `clientID` and `oauth2ClientSecret` (a
    Secret in the policy's namespace holding the client secret under `key`) must be set."""

    enabled: Literal[True] = True
    client_id: str = Field(alias="clientID")
    oauth2_client_secret: SecretRef


class BackendDefault(CamelModel):
    timeout_sec: int
    logging: BackendLogging
    iap: Iap | None = None


class BackendPolicySpec(CamelModel):
    target_ref: TargetRef
    default: BackendDefault
