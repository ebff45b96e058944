"""Identities: the least-privilege node service accounts, Workload Identity principals and bucket grants to either."""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial

import pulumi
import pulumi_gcp as gcp

NODE_SA_ROLES = ("roles/container.defaultNodeServiceAccount", "roles/artifactregistry.reader")
"""CIS GKE 5.2.1: nodes run as a dedicated account holding only GKE's node role and image pulls."""


def workload_principal(project_number: str, project_id: str, namespace: str, ksa: str) -> str:
    """IAM principal of a Kubernetes service account under Workload Identity Federation for GKE."""
    return (
        f"principal://iam.googleapis.com/projects/{project_number}/locations/global/"
        f"workloadIdentityPools/{project_id}.svc.id.goog/subject/ns/{namespace}/sa/{ksa}"
    )


@dataclass(frozen=True)
class KubernetesAccount:
    """A Kubernetes service account: under Workload Identity Federation, a principal IAM can grant roles to."""

    namespace: str
    service_account: str

    def principal(self, project_number: str, *, project_id: str) -> str:
        return workload_principal(project_number, project_id, self.namespace, self.service_account)


@dataclass(frozen=True)
class GoogleAccount:
    """A Google service account granted by email (`serviceAccount:<email>`): the node account of pools that run with
    Workload Identity off, whose pods act as it. `name` names the binding resource."""

    name: str
    email: pulumi.Input[str]


BucketMember = KubernetesAccount | GoogleAccount
"""Who a bucket role goes to: a Kubernetes service account (Workload Identity) or a Google service account."""


def account_suffix(namespace: str, service_account: str) -> str:
    """What a Kubernetes account adds to a binding's resource name: two accounts must never give the same one."""
    return f"{namespace}-{service_account}"


def grant_bucket_role(
    prefix: str,
    bucket: pulumi.Input[str],
    role: str,
    accounts: tuple[BucketMember, ...],
    project: str,
    parent: pulumi.Resource,
    object_prefix: str | None = None,
    bucket_only: bool = False,
) -> None:
    """One BucketIAMMember per account, named `<prefix>-<namespace>-<account>` (`<prefix>-<name>` for a Google
    account) and parented to `parent`; with
    `object_prefix`, an IAM condition limits the role to objects under it (the bucket uses uniform access); with
    `bucket_only`, to the bucket resource itself (its metadata), no object."""
    number = gcp.organizations.get_project_output(project_id=project, opts=pulumi.InvokeOutputOptions(parent=parent)).number
    condition = None
    if bucket_only:
        condition = gcp.storage.BucketIAMMemberConditionArgs(
            title="only the bucket itself",
            expression=pulumi.Output.from_input(bucket).apply(lambda b: f'resource.name == "projects/_/buckets/{b}"'),
        )
    elif object_prefix is not None:
        condition = gcp.storage.BucketIAMMemberConditionArgs(
            title=f"only {object_prefix}"[:100],
            expression=pulumi.Output.from_input(bucket).apply(
                lambda b: f'resource.name.startsWith("projects/_/buckets/{b}/objects/{object_prefix}")'
            ),
        )
    for account in accounts:
        if isinstance(account, GoogleAccount):
            name = f"{prefix}-{account.name}"
            member = pulumi.Output.from_input(account.email).apply(lambda e: f"serviceAccount:{e}")
        else:
            name = f"{prefix}-{account_suffix(account.namespace, account.service_account)}"
            member = number.apply(partial(account.principal, project_id=project))
        gcp.storage.BucketIAMMember(
            name,
            bucket=bucket,
            role=role,
            member=member,
            condition=condition,
            opts=pulumi.ResourceOptions(parent=parent),
        )


@dataclass(frozen=True)
class PrefixWriterArgs:
    project: str
    bucket: str
    object_prefix: str
    """e.g. batch/<workload>/ : the account may create, overwrite and delete objects there only."""
    account: KubernetesAccount


class PrefixWriter(pulumi.ComponentResource):
    """Write access to one folder of a bucket for one Kubernetes service account (a batch Job's results)."""

    def __init__(self, name: str, args: PrefixWriterArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("gke-inference:identity:PrefixWriter", name, None, opts)
        grant_bucket_role(
            f"{name}-writer", args.bucket, "roles/storage.objectUser", (args.account,), args.project, self, args.object_prefix
        )
        self.register_outputs({})


@dataclass(frozen=True)
class NodeIdentityArgs:
    project: str
    account_id: str
    """6-30 characters, lowercase letters, digits and hyphens (the composition derives it from the stack's prefix)."""
    display_name: str


class NodeIdentity(pulumi.ComponentResource):
    """A dedicated node service account with GKE's minimal node role and image pulls (NODE_SA_ROLES) and nothing else
    at project level: the general one every pool uses, or the one of the pools that serve Pathways (their bucket
    grants are made where the buckets are, by ModelStorage and ScratchStorage)."""

    email: pulumi.Output[str]

    def __init__(self, name: str, args: NodeIdentityArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("gke-inference:identity:NodeIdentity", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        account = gcp.serviceaccount.Account(
            f"{name}-sa",
            account_id=args.account_id,
            display_name=args.display_name,
            project=args.project,
            opts=child,
        )
        for role in NODE_SA_ROLES:
            gcp.projects.IAMMember(
                f"{name}-{role.split('/')[-1]}",
                project=args.project,
                role=role,
                member=account.email.apply(lambda e: f"serviceAccount:{e}"),
                opts=child,
            )
        self.email = account.email
        self.register_outputs({"email": self.email})
