"""Model weights: a regional bucket, Anywhere Cache in each accelerator zone, read-only bindings for its readers."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_gcp as gcp

from components.identity import BucketMember, grant_bucket_role

READER_ROLE = "roles/storage.objectViewer"


def secure_bucket(
    resource_name: str,
    *,
    bucket_name: str,
    project: str,
    location: str,
    kms_key: str | None,
    opts: pulumi.ResourceOptions,
    **settings: Any,
) -> gcp.storage.Bucket:
    """A bucket with the controls every bucket of the stack has: uniform access, public access prevention,
    CMEK when a key is given, no force-destroy; `settings` add its own (versioning, lifecycle, ...)."""
    return gcp.storage.Bucket(
        resource_name,
        name=bucket_name,
        project=project,
        location=location,
        storage_class="STANDARD",
        uniform_bucket_level_access=True,
        public_access_prevention="enforced",
        encryption=gcp.storage.BucketEncryptionArgs(default_kms_key_name=kms_key) if kms_key else None,
        force_destroy=False,
        opts=opts,
        **settings,
    )


@dataclass(frozen=True)
class ModelStorageArgs:
    project: str
    bucket_name: str
    location: str
    versioning: bool
    soft_delete_days: int
    cache_zones: tuple[str, ...]
    """One Anywhere Cache per zone; the cache serves only clients in its own zone."""
    cache_ttl_hours: int
    readers: tuple[BucketMember, ...]
    """The accounts that load weights (serving Kubernetes accounts, the Pathways pools' node account): read-only,
    never write."""
    protect: bool
    retain_on_delete: bool
    """Keep the bucket (and the weights) in GCP when the stack drops it."""
    kms_key: str | None = None


class ModelStorage(pulumi.ComponentResource):
    """Uniform access, public access prevention, versioning and soft delete by default; CMEK optional.

    Hierarchical namespace is left off: it cannot be combined with object versioning.
    """

    bucket: pulumi.Output[str]
    url: pulumi.Output[str]

    def __init__(self, name: str, args: ModelStorageArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("gke-inference:storage:ModelStorage", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        depends: list[pulumi.Resource] = []
        if args.kms_key:
            agent = gcp.storage.get_project_service_account_output(
                project=args.project, opts=pulumi.InvokeOutputOptions(parent=self)
            )
            depends.append(
                gcp.kms.CryptoKeyIAMMember(
                    f"{name}-kms",
                    crypto_key_id=args.kms_key,
                    role="roles/cloudkms.cryptoKeyEncrypterDecrypter",
                    member=agent.email_address.apply(lambda e: f"serviceAccount:{e}"),
                    # The project's Cloud Storage service agent: every stack in the project holds this same grant, so
                    # destroying one must not revoke it for the others.
                    opts=pulumi.ResourceOptions(parent=self, retain_on_delete=True),
                )
            )
        bucket = secure_bucket(
            f"{name}-bucket",
            bucket_name=args.bucket_name,
            project=args.project,
            location=args.location,
            kms_key=args.kms_key,
            versioning=gcp.storage.BucketVersioningArgs(enabled=args.versioning),
            soft_delete_policy=gcp.storage.BucketSoftDeletePolicyArgs(retention_duration_seconds=args.soft_delete_days * 86400),
            opts=pulumi.ResourceOptions(
                parent=self,
                protect=args.protect,
                retain_on_delete=args.retain_on_delete,
                depends_on=depends,
            ),
        )
        for zone in args.cache_zones:
            gcp.storage.AnywhereCache(
                f"{name}-cache-{zone}",
                bucket=bucket.name,
                zone=zone,
                ttl=f"{args.cache_ttl_hours * 3600}s",
                opts=child,
            )
        grant_bucket_role(f"{name}-reader", bucket.name, READER_ROLE, args.readers, args.project, self)
        self.bucket = bucket.name
        self.url = bucket.url
        self.register_outputs({"bucket": self.bucket, "url": self.url})
