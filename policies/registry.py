"""The pack's policies, in one list: what ``__main__`` serves and what ``infra.tooling.policy_runner`` runs offline."""

from __future__ import annotations

from pulumi_policy import Policy

from policies import cost, gateway_autoscaling, gke_security, k8s_workloads, node_pools, stack_consistency, storage

PACK_NAME = "gke-inference"

POLICIES: list[Policy] = [
    *gke_security.POLICIES,
    *node_pools.POLICIES,
    *storage.POLICIES,
    *k8s_workloads.POLICIES,
    *gateway_autoscaling.POLICIES,
    *stack_consistency.POLICIES,
    *cost.POLICIES,
]
