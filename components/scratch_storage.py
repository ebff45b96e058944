"""A scratch bucket for the Pathways servers' temporary state, owned by the stack.

Seed 001 points `--gcs_scratch_location` at Google's shared `gs://cloud-pathways-staging`. Here each
stack has its own bucket, objects expire after a TTL, and only the serving identities that need
scratch space may write to it: they never get write access to the model bucket.
"""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_gcp as gcp

from components.identity import BucketMember, grant_bucket_role
from components.model_storage import secure_bucket

WRITER_ROLE = "roles/storage.objectUser"
"""Read, write and delete objects; no bucket administration."""


@dataclass(frozen=True)
class ScratchStorageArgs:
    project: str
    bucket_name: str
    location: str
    ttl_days: int
    writers: tuple[BucketMember, ...]
    """Who the Pathways servers run as: the node account of the pools they run on (Workload Identity off there), or a
    Kubernetes account where nodes may come with Workload Identity on."""
    protect: bool
    kms_key: str | None = None


class ScratchStorage(pulumi.ComponentResource):
    """Uniform access, public access prevention, CMEK when the model bucket has it, a delete-after-TTL rule."""

    url: pulumi.Output[str]

    def __init__(self, name: str, args: ScratchStorageArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("gke-inference:storage:ScratchStorage", name, None, opts)
        bucket = secure_bucket(
            f"{name}-bucket",
            bucket_name=args.bucket_name,
            project=args.project,
            location=args.location,
            kms_key=args.kms_key,
            opts=pulumi.ResourceOptions(parent=self, protect=args.protect),
            lifecycle_rules=[
                gcp.storage.BucketLifecycleRuleArgs(
                    action=gcp.storage.BucketLifecycleRuleActionArgs(type="Delete"),
                    condition=gcp.storage.BucketLifecycleRuleConditionArgs(age=args.ttl_days),
                )
            ],
        )
        grant_bucket_role(f"{name}-writer", bucket.name, WRITER_ROLE, args.writers, args.project, self)
        self.url = bucket.url
        self.register_outputs({"url": self.url})
