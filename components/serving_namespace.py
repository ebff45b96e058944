"""A namespace for serving workloads and the Kubernetes service accounts they run as.

The accounts are the Workload Identity principals the model bucket grants read access to, so the
binding and the identity are created by the same stack.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import pulumi
import pulumi_kubernetes as k8s

PodSecurityLevel = Literal["restricted", "baseline", "privileged"]
EXCEPTION_ANNOTATION = "gke-inference.dev/pod-security-exception"
ROUTES_LABEL = "gke-inference.dev/gateway-routes"
"""Namespaces with it may attach HTTPRoutes to the gateway (its listener's allowedRoutes selector)."""


@dataclass(frozen=True)
class ServingNamespaceArgs:
    service_accounts: tuple[str, ...]
    enforce: PodSecurityLevel = "restricted"
    """Enforced Pod Security level; `restricted` unless a workload here needs more, then `exception` says why."""
    exception: str | None = None
    gateway_routes: bool = False
    """Label the namespace so its HTTPRoutes may attach to the environment's Inference Gateway."""


class ServingNamespace(pulumi.ComponentResource):
    def __init__(self, name: str, args: ServingNamespaceArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("gke-inference:k8s:ServingNamespace", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        if (args.enforce == "restricted") != (args.exception is None):
            raise ValueError(f"namespace {name}: a Pod Security level below restricted needs its reason, and only then")
        namespace = k8s.core.v1.Namespace(
            f"{name}-ns",
            metadata=k8s.meta.v1.ObjectMetaArgs(
                name=name,
                labels={
                    "pod-security.kubernetes.io/enforce": args.enforce,
                    "pod-security.kubernetes.io/audit": "restricted",
                    "pod-security.kubernetes.io/warn": "restricted",
                    "app.kubernetes.io/managed-by": "pulumi",
                    **({ROUTES_LABEL: "true"} if args.gateway_routes else {}),
                },
                annotations={EXCEPTION_ANNOTATION: args.exception} if args.exception else None,
            ),
            opts=child,
        )
        for account in args.service_accounts:
            k8s.core.v1.ServiceAccount(
                f"{name}-{account}",
                metadata=k8s.meta.v1.ObjectMetaArgs(name=account, namespace=namespace.metadata.name),
                automount_service_account_token=False,
                opts=child,
            )
        self.register_outputs({})
