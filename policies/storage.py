"""Model-weight buckets and their IAM (CIS GCP 5.1/5.2, GCS docs): controls C21-C27."""

from __future__ import annotations

import json
from collections.abc import Iterator

from pulumi_policy import ResourceValidationArgs, Severity

from policies.base import Config, Meta, as_int, get, is_unknown, items, resource_policy

BUCKET = "gcp:storage/bucket:Bucket"
BUCKET_IAM = (
    "gcp:storage/bucketIAMMember:BucketIAMMember",
    "gcp:storage/bucketIAMBinding:BucketIAMBinding",
    "gcp:storage/bucketIAMPolicy:BucketIAMPolicy",
)
PUBLIC_MEMBERS = ("allUsers", "allAuthenticatedUsers")
GCS_DEFAULT_SOFT_DELETE_SECONDS = 604800
"""Cloud Storage keeps deleted objects 7 days when a bucket sets no soft-delete policy."""


def _ubla(args: ResourceValidationArgs, cfg: Config) -> Iterator[str]:
    if get(args.props, "uniformBucketLevelAccess") is not True:
        yield "uniformBucketLevelAccess is not true: object ACLs can drift from IAM"


def _public_access_prevention(args: ResourceValidationArgs, cfg: Config) -> Iterator[str]:
    value = get(args.props, "publicAccessPrevention")
    if value != "enforced":
        yield f"publicAccessPrevention is {value or 'unset (inherited)'}; expected enforced"


def _members(args: ResourceValidationArgs) -> list[str]:
    if args.resource_type.endswith("BucketIAMMember"):
        return [get(args.props, "member")]
    if args.resource_type.endswith("BucketIAMBinding"):
        return list(items(get(args.props, "members")))
    policy = get(args.props, "policyData")
    if not isinstance(policy, str):
        return []
    return [m for b in json.loads(policy).get("bindings", []) for m in b.get("members", [])]


def _no_public_members(args: ResourceValidationArgs, cfg: Config) -> Iterator[str]:
    for member in _members(args):
        if member in PUBLIC_MEMBERS:
            yield f"member {member} makes the bucket public"


def _recoverability(args: ResourceValidationArgs, cfg: Config) -> Iterator[str]:
    minimum = int(cfg["minSoftDeleteSeconds"])
    soft = as_int(get(args.props, "softDeletePolicy.retentionDurationSeconds"))
    window = GCS_DEFAULT_SOFT_DELETE_SECONDS if soft is None else soft
    if get(args.props, "versioning.enabled") is not True and window < minimum:
        yield f"versioning is off and soft delete keeps objects {window} s; expected versioning or at least {minimum} s"
    if get(args.props, "forceDestroy") is True:
        yield "forceDestroy is true: destroying the stack deletes every object"


def _no_lock(args: ResourceValidationArgs, cfg: Config) -> Iterator[str]:
    if get(args.props, "retentionPolicy.isLocked") is True and not cfg["allowBucketLock"]:
        yield "retentionPolicy.isLocked is true: Bucket Lock is irreversible and this environment does not allow it"


def _cmek(args: ResourceValidationArgs, cfg: Config) -> Iterator[str]:
    key = get(args.props, "encryption.defaultKmsKeyName")
    if not key and not is_unknown(key):
        yield "encryption.defaultKmsKeyName is not set: objects use Google-managed keys"


POLICIES = [
    resource_policy(
        Meta(
            "inf-gcs-ubla",
            "Buckets use uniform bucket-level access (IAM only, no object ACLs).",
            Severity.HIGH,
            "Set uniform_bucket_level_access=True.",
            tags=("cis-gcp:5.2",),
        ),
        [BUCKET],
        _ubla,
    ),
    resource_policy(
        Meta(
            "inf-gcs-public-access-prevention",
            "Buckets enforce public access prevention: model weights are never public.",
            Severity.CRITICAL,
            "Set public_access_prevention='enforced'.",
            tags=("cis-gcp:5.1",),
        ),
        [BUCKET],
        _public_access_prevention,
    ),
    resource_policy(
        Meta(
            "inf-gcs-no-public-members",
            "No bucket IAM grants to allUsers or allAuthenticatedUsers.",
            Severity.CRITICAL,
            "Grant roles to service accounts or principal:// Workload Identity principals only.",
            tags=("cis-gcp:5.1",),
        ),
        BUCKET_IAM,
        _no_public_members,
    ),
    resource_policy(
        Meta(
            "inf-gcs-recoverability",
            "A bad model push or delete can be undone: versioning or enough soft delete, and no force-destroy.",
            Severity.MEDIUM,
            "Keep model_storage.versioning on or soft_delete_days at least the minimum; never set force_destroy.",
            params={
                "minSoftDeleteSeconds": {
                    "type": "integer",
                    "minimum": 0,
                    "default": GCS_DEFAULT_SOFT_DELETE_SECONDS,
                    "description": "Shortest soft-delete window accepted (the organisation policy minimum).",
                }
            },
        ),
        [BUCKET],
        _recoverability,
    ),
    resource_policy(
        Meta(
            "inf-gcs-no-lock-outside-prod",
            "Bucket Lock (irreversible retention) only where the environment's policy config allows it.",
            Severity.HIGH,
            "Remove retention_policy.is_locked, or set allowBucketLock in the environment's policy config after review.",
            params={
                "allowBucketLock": {"type": "boolean", "default": False, "description": "This environment may lock buckets."}
            },
        ),
        [BUCKET],
        _no_lock,
    ),
    resource_policy(
        Meta(
            "inf-gcs-cmek",
            "Model buckets are encrypted with a customer-managed key.",
            Severity.MEDIUM,
            "Set model_storage.kms_key and grant the Cloud Storage service agent roles/cloudkms.cryptoKeyEncrypterDecrypter on it.",
        ),
        [BUCKET],
        _cmek,
    ),
]
