"""The LeaderWorkerSet API: CRD and controller from the upstream Helm chart, at a pinned version.

The chart (OCI, kubernetes-sigs/lws) carries the CRD in ``crds/``; pulumi-kubernetes' ``helm.v4.Chart``
renders it with the templates and manages every object as its own resource (server-side apply,
so the 1.3 MB CRD fits), and ``depends_on`` the chart waits for all of them: a LeaderWorkerSet
that depends on ``LeaderWorkerSetApi.ready`` is applied only once the CRD and the webhook exist.
"""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_kubernetes as k8s

NAMESPACE = "lws-system"
"""The namespace upstream's manifests and chart install into."""


@dataclass(frozen=True)
class LeaderWorkerSetApiArgs:
    chart: str
    """OCI chart reference, e.g. oci://registry.k8s.io/lws/charts/lws."""
    version: str


def chart_values(version: str) -> dict[str, object]:
    """Keys of the chart's values.yaml (v0.10.0): the controller image pinned to the chart's release (the
    values file in git says `main`), and a pod security context that passes Pod Security `restricted`."""
    return {
        "image": {"manager": {"tag": f"v{version}", "pullPolicy": "IfNotPresent"}},
        "podSecurityContext": {"runAsNonRoot": True, "seccompProfile": {"type": "RuntimeDefault"}},
    }


class LeaderWorkerSetApi(pulumi.ComponentResource):
    """Namespace, then the chart (CRD, controller Deployment, webhooks, RBAC) into it."""

    ready: list[pulumi.Resource]
    """What a LeaderWorkerSet must depend on."""

    def __init__(self, name: str, args: LeaderWorkerSetApiArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("gke-inference:k8s:LeaderWorkerSetApi", name, None, opts)
        namespace = k8s.core.v1.Namespace(
            f"{name}-ns",
            metadata=k8s.meta.v1.ObjectMetaArgs(
                name=NAMESPACE,
                labels={
                    "app.kubernetes.io/managed-by": "pulumi",
                    "pod-security.kubernetes.io/enforce": "restricted",
                },
            ),
            opts=pulumi.ResourceOptions(parent=self),
        )
        chart = k8s.helm.v4.Chart(
            f"{name}-chart",
            chart=args.chart,
            version=args.version,
            # An output of the namespace: unknown on the first preview, so the chart is not rendered against a
            # cluster that does not exist yet (pulumi-kubernetes #3027).
            namespace=namespace.metadata.name,
            values=chart_values(args.version),
            opts=pulumi.ResourceOptions(parent=self, depends_on=[namespace]),
        )
        self.ready = [chart]
        self.register_outputs({})
