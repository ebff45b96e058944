"""The platform stack's outputs the serving stack reads through a StackReference: one typed, versioned contract.

Both programs import this one dataclass: the platform exports exactly its fields (`exports` refuses a missing or
extra one), the serving program reads exactly them (`read`), so a renamed output fails a test and `plan`, never a
deploy with a KeyError. A change of meaning bumps VERSION; the serving program refuses a platform stack that
exports another version (deploy the platform first: CI's order).

Everything else both layers need comes from the one values file per environment they share (stacks/), so no value
is typed twice; the contract carries what only the platform's deployment knows (the cluster's endpoint and CA, the
accounts' emails) and what the serving program checks it was planned against (the pools and classes).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Generic, TypeVar

import pulumi

VERSION = 2
"""2: cluster_endpoint is the DNS-based control-plane endpoint, and kubeconfig talks to it (1: the IP endpoint)."""
T = TypeVar("T")


@dataclass(frozen=True)
class PlatformContract(Generic[T]):
    """The platform stack's outputs by name; T is a plain value (the exporting side, tests) or a pulumi.Output."""

    contract_version: T
    cluster_name: T
    cluster_endpoint: T
    """The DNS-based control-plane endpoint (gke-<id>.<region>.gke.goog): IAM-authorised, reachable from outside the
    VPC and the authorized networks (CI's runners)."""
    cluster_ca_certificate: T
    kubeconfig: T
    """Secret: the serving program's Kubernetes provider talks to the cluster with it, through cluster_endpoint."""
    subnetwork: T
    """The node subnet's name: an internal gateway's address is reserved in it."""
    node_service_account: T
    pathways_node_service_account: T
    """The Pathways pools' node account email ('' when no workload runs Pathways)."""
    model_bucket: T
    node_pools: T
    """JSON: configured pool name -> its shape (e.g. "v6e 4x4", "2x nvidia-l4"), what the serving layer places onto."""
    compute_classes: T
    """JSON: compute class -> the pool it selects."""
    namespaces: T
    """JSON: serving namespace -> its Kubernetes service accounts (the platform owns both, and their bucket IAM)."""


OUTPUTS = tuple(f.name for f in fields(PlatformContract))


def exports(values: Mapping[str, pulumi.Input[object]]) -> dict[str, pulumi.Input[object]]:
    """The platform stack's outputs: exactly the contract's fields (its version filled in)."""
    given = {"contract_version": VERSION, **values}
    missing, extra = sorted(set(OUTPUTS) - given.keys()), sorted(given.keys() - set(OUTPUTS))
    if missing or extra:
        raise ValueError(f"platform outputs differ from the contract: missing {missing}, unexpected {extra}")
    return {name: given[name] for name in OUTPUTS}


def as_json(value: Mapping[str, object]) -> str:
    """Structured contract values travel as sorted JSON strings (stable across runs and languages)."""
    return json.dumps(value, sort_keys=True)


def read(reference: pulumi.StackReference) -> PlatformContract[pulumi.Output[object]]:
    """Every contract output of the platform stack; the version is checked when it resolves."""

    def checked(version: object) -> object:
        if version != VERSION:
            raise pulumi.RunError(
                f"the platform stack exports contract version {version!r}; this serving program reads {VERSION}: "
                "deploy the platform stack of this commit first"
            )
        return version

    outputs = {name: reference.require_output(name) for name in OUTPUTS}
    outputs["contract_version"] = outputs["contract_version"].apply(checked)
    return PlatformContract(**outputs)
