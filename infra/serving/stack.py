"""The serving stack: its providers on the platform stack's cluster, read through a StackReference, then the servers.

The platform stack of the same environment is `organization/gke-inference-platform/<stack>` (a self-managed
backend's name for it) unless `gke-inference:platform_stack` names another. The serving program refuses to deploy
onto a platform stack whose pools, compute classes or namespaces differ from what its own configuration expects
(the values file changed and the platform was not deployed since): it would place servers on pools that do not exist.
"""

from __future__ import annotations

import json

import pulumi
import pulumi_gcp as gcp
import pulumi_kubernetes as k8s

from infra import contract
from infra.config import StackConfig
from infra.platform.composition import pool_shapes, provider_labels
from infra.serving import composition as serving

PLATFORM_PROJECT = "gke-inference-platform"
SERVING_PROJECT = "gke-inference-serving"


def platform_stack_name(cfg: StackConfig) -> str:
    return cfg.sections.platform_stack or f"organization/{PLATFORM_PROJECT}/{cfg.stack}"


def expected(cfg: StackConfig) -> dict[str, object]:
    """What this configuration expects of the platform stack: the contract's structured outputs, decoded."""
    namespaces: dict[str, list[str]] = {}
    for w in cfg.workloads.values():
        namespaces.setdefault(w.config.namespace, []).append(w.service_account)
    return {
        "node_pools": pool_shapes(cfg),
        "compute_classes": {name: cc.pool for name, cc in cfg.compute_classes.items()},
        "namespaces": {ns: sorted(accounts) for ns, accounts in sorted(namespaces.items())},
    }


def check_platform(cfg: StackConfig, found: dict[str, str]) -> None:
    """Refuse a platform stack deployed from another configuration than this one."""
    for name, want in expected(cfg).items():
        have = json.loads(found[name])
        if have != want:
            raise pulumi.RunError(
                f"the platform stack {platform_stack_name(cfg)} exports {name} {have}, but this configuration expects "
                f"{want}: deploy the platform stack first"
            )


def build(cfg: StackConfig) -> dict[str, pulumi.Input[object]]:
    """The serving stack's providers and servers; returns its outputs."""
    reference = pulumi.StackReference("platform", stack_name=platform_stack_name(cfg))
    platform = contract.read(reference)
    structured = pulumi.Output.all(
        node_pools=platform.node_pools, compute_classes=platform.compute_classes, namespaces=platform.namespaces
    ).apply(lambda found: check_platform(cfg, found))
    # Named as the single-stack program named them: resources moved here from an old stack keep their providers.
    gcp_provider = gcp.Provider("gcp", project=cfg.project, region=cfg.region, default_labels=provider_labels(cfg))
    # The provider waits for the check: nothing is created on a platform this configuration does not describe. The
    # kubeconfig stays secret: the platform stack exports it as one, and Output.all keeps that.
    kubeconfig = pulumi.Output.all(platform.kubeconfig, structured).apply(lambda v: str(v[0]))
    k8s_provider = k8s.Provider("k8s", kubeconfig=kubeconfig, enable_server_side_apply=True)
    handles = serving.PlatformHandles(
        gcp=pulumi.ResourceOptions(providers=[gcp_provider]),
        k8s=pulumi.ResourceOptions(providers=[k8s_provider]),
        # '' when the platform knows none (an existing cluster on a network the config does not name).
        subnetwork=platform.subnetwork.apply(str),
    )
    return serving.build(cfg, handles)
