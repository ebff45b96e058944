"""A namespace for serving workloads and the Kubernetes service accounts they run as.

The accounts are the Workload Identity principals the model bucket grants read access to, so the
binding and the identity are created by the same stack.
"""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_kubernetes as k8s

POD_SECURITY_ENFORCE = "baseline"
"""Enforced Pod Security level. Not `restricted`: the disaggregated JetStream server of seed 001
adds NET_ADMIN, SYS_PTRACE and SYS_TIME. Restricted is still audited and warned about, and each
workload's own security context is restricted unless it names its exception."""


@dataclass(frozen=True)
class ServingNamespaceArgs:
    service_accounts: tuple[str, ...]


class ServingNamespace(pulumi.ComponentResource):
    def __init__(self, name: str, args: ServingNamespaceArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("gke-inference:k8s:ServingNamespace", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        namespace = k8s.core.v1.Namespace(
            f"{name}-ns",
            metadata=k8s.meta.v1.ObjectMetaArgs(
                name=name,
                labels={
                    "pod-security.kubernetes.io/enforce": POD_SECURITY_ENFORCE,
                    "pod-security.kubernetes.io/audit": "restricted",
                    "pod-security.kubernetes.io/warn": "restricted",
                    "app.kubernetes.io/managed-by": "pulumi",
                },
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
