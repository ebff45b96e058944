"""The pack's policies, in one list: what ``__main__`` serves and what ``infra.tooling.policy_runner`` runs offline."""

from __future__ import annotations

from pulumi_policy import Policy

from policies import cost, gateway_autoscaling, gke_security, k8s_workloads, node_pools, stack_consistency, storage

PACK_NAME = "gke-inference"

MODULES = (gke_security, node_pools, storage, k8s_workloads, gateway_autoscaling, stack_consistency, cost)
"""The modules that define the pack's policies, each in its POLICIES, in the pack's order."""

POLICIES: list[Policy] = [policy for module in MODULES for policy in module.POLICIES]
