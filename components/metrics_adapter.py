"""The Custom Metrics Stackdriver Adapter: Managed Prometheus metrics for HPAs, keyless.

The objects of upstream's `deploy/production/adapter_new_resource_model.yaml` (GoogleCloudPlatform/
k8s-stackdriver @673c7dd8, image v0.16.9-gke.0), written as typed objects so `plan` validates them
and the policy pack sees them, with two changes: the adapter's own identity reads Cloud
Monitoring through a Workload Identity principal holding `roles/monitoring.viewer` only (no key,
no node-SA rights), and the pod gets what hardening its image allows (see CONTAINER_EXCEPTION).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import pulumi
import pulumi_gcp as gcp
import pulumi_kubernetes as k8s

from components.identity import workload_principal
from components.model_server import checkov_annotations
from components.serving_objects import disruption_budget

NAMESPACE = "custom-metrics"
ACCOUNT = "custom-metrics-stackdriver-adapter"
ROLE = "roles/monitoring.viewer"
PORT = 443
EXCEPTION_ANNOTATION = "policy.gke-inference.dev/{policy}"
CONTAINER_EXCEPTION = (
    "upstream's image serves the aggregated metrics API on port 443 and writes its self-signed serving "
    "certificate under its working directory, so it runs as its image user with a writable root filesystem; "
    "privilege escalation is off, every capability but NET_BIND_SERVICE dropped, seccomp RuntimeDefault"
)
IMAGE_POLICY = "inf-k8s-image-pinned"
"""The policy-pack exception an image without a published digest carries; its reason is also checkov's CKV_K8S_43 skip."""
RUN_AS_IMAGE_USER = (
    "upstream's image writes its self-signed serving certificate under its working directory, so it runs as its image "
    "user rather than a forced high non-root UID that may not write there (policy exception inf-k8s-nonroot-readonly); "
    "privilege escalation is off, every capability but NET_BIND_SERVICE dropped, seccomp RuntimeDefault"
)
CHECKOV_SKIPS = {
    "CKV_K8S_15": (
        "the adapter image is pinned by exact release tag in infra/versions.py; Always would make every adapter restart, "
        "and so every HPA's metrics, depend on reaching the registry for a pinned release"
    ),
    "CKV_K8S_22": (
        "upstream's image writes its self-signed serving certificate under its working directory at start, so its root "
        "filesystem stays writable (policy exception inf-k8s-nonroot-readonly)"
    ),
    "CKV_K8S_23": RUN_AS_IMAGE_USER,
    "CKV_K8S_25": (
        "NET_BIND_SERVICE is the one capability added (all others dropped): the adapter serves the aggregated metrics "
        "APIs on port 443, the port its Service and APIServices name"
    ),
    "CKV_K8S_38": (
        "the adapter needs its token: it serves aggregated APIs (delegated authentication and authorization against "
        "the API server) and reads pods and nodes through the API server"
    ),
    "CKV_K8S_40": RUN_AS_IMAGE_USER,
}
"""checkov check id -> why it does not apply to the adapter Deployment (its pod template has no annotations of its own)."""
EXTERNAL_READER_SKIPS = {
    "CKV_K8S_49": (
        "the resources of external.metrics.k8s.io are the external metric names, not known in advance; the wildcard is "
        "confined to that one API group and to read verbs, as upstream grants the HPA controller"
    ),
}
EXTERNAL_READER_BINDING_SKIPS = {
    "CKV2_K8S_5": (
        "the bound role reads only external.metrics.k8s.io, which serves metric values and no secrets; the check "
        "takes its resources wildcard for secrets whatever the API group"
    ),
}
APISERVICES = (
    ("v1beta1", "custom.metrics.k8s.io", 100),
    ("v1beta2", "custom.metrics.k8s.io", 200),
    ("v1beta1", "external.metrics.k8s.io", 100),
)
"""(version, group, versionPriority) of the metrics APIs the adapter serves."""


@dataclass(frozen=True)
class MetricsAdapterArgs:
    project: str
    image: str
    exceptions: Mapping[str, str] = field(default_factory=dict)
    """Policy name -> reason, beside the container exception this module names itself."""


class MetricsAdapter(pulumi.ComponentResource):
    """Namespace, identity and RBAC, the adapter Deployment and Service, and its three APIServices."""

    def __init__(self, name: str, args: MetricsAdapterArgs, gcp_opts: pulumi.ResourceOptions, opts: pulumi.ResourceOptions):
        super().__init__("gke-inference:k8s:MetricsAdapter", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        meta, rbac, core = k8s.meta.v1, k8s.rbac.v1, k8s.core.v1
        project = gcp.organizations.get_project_output(project_id=args.project, opts=pulumi.InvokeOutputOptions(parent=self))
        # The principal is the project's (Workload Identity pool <project>.svc.id.goog), not the cluster's: every
        # stack in the project grants this same binding, so destroying one stack must not revoke it for the others.
        gcp.projects.IAMMember(
            f"{name}-monitoring-viewer",
            project=args.project,
            role=ROLE,
            member=project.number.apply(lambda n: workload_principal(n, args.project, NAMESPACE, ACCOUNT)),
            opts=pulumi.ResourceOptions.merge(gcp_opts, pulumi.ResourceOptions(parent=self, retain_on_delete=True)),
        )
        namespace = core.Namespace(
            f"{name}-ns",
            metadata=meta.ObjectMetaArgs(
                name=NAMESPACE,
                labels={
                    "app.kubernetes.io/managed-by": "pulumi",
                    "pod-security.kubernetes.io/enforce": "baseline",
                    "pod-security.kubernetes.io/warn": "restricted",
                },
            ),
            opts=child,
        )
        in_ns = pulumi.ResourceOptions(parent=self, depends_on=[namespace])
        core.ServiceAccount(
            f"{name}-sa",
            metadata=meta.ObjectMetaArgs(name=ACCOUNT, namespace=NAMESPACE),
            automount_service_account_token=True,
            opts=in_ns,
        )
        subject = [rbac.SubjectArgs(kind="ServiceAccount", name=ACCOUNT, namespace=NAMESPACE)]
        rbac.ClusterRoleBinding(
            f"{name}-auth-delegator",
            metadata=meta.ObjectMetaArgs(name="custom-metrics:system:auth-delegator"),
            role_ref=rbac.RoleRefArgs(api_group="rbac.authorization.k8s.io", kind="ClusterRole", name="system:auth-delegator"),
            subjects=subject,
            opts=child,
        )
        rbac.RoleBinding(
            f"{name}-auth-reader",
            metadata=meta.ObjectMetaArgs(name="custom-metrics-auth-reader", namespace="kube-system"),
            role_ref=rbac.RoleRefArgs(
                api_group="rbac.authorization.k8s.io", kind="Role", name="extension-apiserver-authentication-reader"
            ),
            subjects=subject,
            opts=child,
        )
        reader = rbac.ClusterRole(
            f"{name}-resource-reader",
            metadata=meta.ObjectMetaArgs(name="custom-metrics-resource-reader"),
            rules=[
                rbac.PolicyRuleArgs(api_groups=[""], resources=["pods", "nodes", "nodes/stats"], verbs=["get", "list", "watch"])
            ],
            opts=child,
        )
        rbac.ClusterRoleBinding(
            f"{name}-resource-reader",
            metadata=meta.ObjectMetaArgs(name="custom-metrics-resource-reader"),
            role_ref=rbac.RoleRefArgs(api_group="rbac.authorization.k8s.io", kind="ClusterRole", name=reader.metadata.name),
            subjects=subject,
            opts=child,
        )
        external = rbac.ClusterRole(
            f"{name}-external-reader",
            metadata=meta.ObjectMetaArgs(name="external-metrics-reader", annotations=checkov_annotations(EXTERNAL_READER_SKIPS)),
            rules=[rbac.PolicyRuleArgs(api_groups=["external.metrics.k8s.io"], resources=["*"], verbs=["list", "get", "watch"])],
            opts=child,
        )
        rbac.ClusterRoleBinding(
            f"{name}-external-reader",
            metadata=meta.ObjectMetaArgs(
                name="external-metrics-reader", annotations=checkov_annotations(EXTERNAL_READER_BINDING_SKIPS)
            ),
            role_ref=rbac.RoleRefArgs(api_group="rbac.authorization.k8s.io", kind="ClusterRole", name=external.metadata.name),
            subjects=[rbac.SubjectArgs(kind="ServiceAccount", name="horizontal-pod-autoscaler", namespace="kube-system")],
            opts=child,
        )
        labels = {"k8s-app": ACCOUNT}
        k8s.apps.v1.Deployment(
            f"{name}-deployment",
            metadata=meta.ObjectMetaArgs(
                name=ACCOUNT,
                namespace=NAMESPACE,
                labels=labels,
                annotations=_deployment_annotations(args),
            ),
            spec=k8s.apps.v1.DeploymentSpecArgs(
                replicas=1,
                selector=meta.LabelSelectorArgs(match_labels=labels),
                template=core.PodTemplateSpecArgs(metadata=meta.ObjectMetaArgs(labels=labels), spec=_pod_spec(args.image)),
            ),
            opts=in_ns,
        )
        service = core.Service(
            f"{name}-svc",
            metadata=meta.ObjectMetaArgs(name=ACCOUNT, namespace=NAMESPACE, labels=labels),
            spec=core.ServiceSpecArgs(
                type="ClusterIP", selector=labels, ports=[core.ServicePortArgs(port=PORT, target_port=PORT, protocol="TCP")]
            ),
            opts=in_ns,
        )
        disruption_budget(f"{name}-pdb", meta.ObjectMetaArgs(name=ACCOUNT, namespace=NAMESPACE), labels, in_ns)
        # The aggregated API is called by the control plane, whose source address is not a stable pod or CIDR:
        # admit the serving port only.
        k8s.networking.v1.NetworkPolicy(
            f"{name}-netpol",
            metadata=meta.ObjectMetaArgs(name=ACCOUNT, namespace=NAMESPACE),
            spec=k8s.networking.v1.NetworkPolicySpecArgs(
                pod_selector=meta.LabelSelectorArgs(match_labels=labels),
                policy_types=["Ingress"],
                ingress=[
                    k8s.networking.v1.NetworkPolicyIngressRuleArgs(ports=[k8s.networking.v1.NetworkPolicyPortArgs(port=PORT)])
                ],
            ),
            opts=in_ns,
        )
        for version, group, priority in APISERVICES:
            k8s.apiregistration.v1.APIService(
                f"{name}-{version}-{group.split('.')[0]}",
                metadata=meta.ObjectMetaArgs(name=f"{version}.{group}"),
                spec=k8s.apiregistration.v1.APIServiceSpecArgs(
                    insecure_skip_tls_verify=True,
                    group=group,
                    group_priority_minimum=100,
                    version_priority=priority,
                    service=k8s.apiregistration.v1.ServiceReferenceArgs(name=ACCOUNT, namespace=NAMESPACE),
                    version=version,
                ),
                opts=pulumi.ResourceOptions(parent=self, depends_on=[service]),
            )
        self.register_outputs({})


def _deployment_annotations(args: MetricsAdapterArgs) -> dict[str, str]:
    """checkov skips (CKV_K8S_43 with the image-digest exception's reason, when it has one) and the policy exceptions."""
    digest = {"CKV_K8S_43": args.exceptions[IMAGE_POLICY].replace("=", " ")} if IMAGE_POLICY in args.exceptions else {}
    policies = {"inf-k8s-nonroot-readonly": CONTAINER_EXCEPTION, **args.exceptions}
    return {
        **checkov_annotations({**CHECKOV_SKIPS, **digest}),
        **{EXCEPTION_ANNOTATION.format(policy=p): why for p, why in policies.items()},
    }


def _pod_spec(image: str) -> k8s.core.v1.PodSpecArgs:
    core = k8s.core.v1
    health = core.HTTPGetActionArgs(path="/healthz", port=PORT, scheme="HTTPS")
    return core.PodSpecArgs(
        service_account_name=ACCOUNT,
        automount_service_account_token=True,  # it serves an aggregated API and reads pods and nodes
        security_context=core.PodSecurityContextArgs(seccomp_profile=core.SeccompProfileArgs(type="RuntimeDefault")),
        tolerations=[
            core.TolerationArgs(key="nvidia.com/gpu", operator="Equal", value="present", effect="NoSchedule"),
            core.TolerationArgs(key="cloud.google.com/gke-tpu", operator="Equal", value="present", effect="NoSchedule"),
        ],
        containers=[
            core.ContainerArgs(
                name="pod-custom-metrics-stackdriver-adapter",
                image=image,
                image_pull_policy="IfNotPresent",
                command=["/adapter", "--use-new-resource-model=true", "--fallback-for-container-metrics=true"],
                ports=[core.ContainerPortArgs(name="https", container_port=PORT, protocol="TCP")],
                resources=core.ResourceRequirementsArgs(
                    requests={"cpu": "250m", "memory": "200Mi"}, limits={"cpu": "250m", "memory": "200Mi"}
                ),
                security_context=core.SecurityContextArgs(
                    allow_privilege_escalation=False,
                    capabilities=core.CapabilitiesArgs(drop=["ALL"], add=["NET_BIND_SERVICE"]),
                ),
                readiness_probe=core.ProbeArgs(http_get=health, initial_delay_seconds=40, period_seconds=10, timeout_seconds=5),
                liveness_probe=core.ProbeArgs(
                    http_get=health, initial_delay_seconds=60, period_seconds=30, failure_threshold=5, timeout_seconds=5
                ),
            )
        ],
    )
