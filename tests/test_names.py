"""Physical names come from the stack (infra/names.py): two stacks in one project never share a GCP resource name."""

from __future__ import annotations

import dataclasses
import re
from typing import Any

import pytest
from conftest import BASE, STACKS, mutate
from test_config import problems

from infra.config import load_config
from infra.names import (
    BUCKET_NAME_MAX,
    PREFIX_MAX,
    SCRATCH_SUFFIX,
    bucket_name,
    default_bucket_name,
    node_account_id,
    pathways_account_id,
    resource_prefix,
    scratch_bucket_name,
)
from infra.tooling.plan import StackFile, run

NS = "gke-inference"

IDENTITY: dict[str, tuple[str, ...]] = {
    "gcp:container/cluster:Cluster": ("project", "location", "name"),
    "gcp:container/nodePool:NodePool": ("project", "location", "cluster", "name"),
    "gcp:compute/network:Network": ("project", "name"),
    "gcp:compute/subnetwork:Subnetwork": ("project", "region", "name"),
    "gcp:compute/router:Router": ("project", "region", "name"),
    "gcp:compute/routerNat:RouterNat": ("project", "region", "router", "name"),
    "gcp:compute/firewall:Firewall": ("project", "name"),
    "gcp:compute/address:Address": ("project", "region", "name"),
    "gcp:serviceaccount/account:Account": ("project", "accountId"),
    "gcp:storage/bucket:Bucket": ("name",),  # global
    "gcp:storage/anywhereCache:AnywhereCache": ("bucket", "zone"),
    "gcp:storage/bucketObject:BucketObject": ("bucket", "name"),
    "gcp:storage/bucketIAMMember:BucketIAMMember": ("bucket", "role", "member"),
    "gcp:projects/iAMMember:IAMMember": ("project", "role", "member"),
    "gcp:kms/cryptoKeyIAMMember:CryptoKeyIAMMember": ("cryptoKeyId", "role", "member"),
    # Server-assigned IDs: what a person tells them apart by is the display name (the dashboard's is in its JSON).
    "gcp:monitoring/alertPolicy:AlertPolicy": ("project", "displayName"),
    "gcp:monitoring/dashboard:Dashboard": ("project", "dashboardJson"),
}
"""What GCP identifies each resource by (a resource's provider supplies project and region when the inputs leave
them out: both stacks here use one project and region, so leaving them out compares alike)."""
SHARED = {"gcp:projects/service:Service"}
"""The project's APIs: every stack of a project enables the same ones, and none disables them on destroy."""
PROJECT_POOL = ".svc.id.goog/subject/"
"""A Workload Identity principal is the project's (pool <project>.svc.id.goog), the same in every cluster of it: a
project-level grant to one (the metrics adapter's) is one binding every stack of the project holds."""


SERVICE_AGENTS = ("@container-engine-robot.iam.gserviceaccount.com", "@gs-project-accounts.iam.gserviceaccount.com")
"""The project's GKE and Cloud Storage service agents: a CMEK grant to one is one binding every stack of it holds."""


def shared(item: dict[str, Any]) -> bool:
    member = str(item["inputs"].get("member"))
    return (
        item["type"] in SHARED
        or (item["type"] == "gcp:projects/iAMMember:IAMMember" and PROJECT_POOL in member)
        or (item["type"] == "gcp:kms/cryptoKeyIAMMember:CryptoKeyIAMMember" and member.endswith(SERVICE_AGENTS))
    )


def gcp_identities(stack_file: StackFile) -> tuple[dict[tuple[Any, ...], str], list[dict[str, Any]]]:
    """Every GCP resource the stack's two programs register, by its identity in GCP; and the shared ones."""
    found: dict[tuple[Any, ...], str] = {}
    common = []
    for r in run(stack_file).resources:
        item = r.as_json()
        kind = item["type"]
        if not kind.startswith("gcp:"):
            continue
        if shared(item):
            common.append(item)
            continue
        assert kind in IDENTITY, f"{kind}: add what GCP identifies it by to IDENTITY"
        inputs = item["inputs"]
        found[(kind, *(str(inputs.get(key)) for key in IDENTITY[kind]))] = item["urn"]
    return found, common


@pytest.mark.parametrize("env", ["staging", "prod"])
def test_a_copy_named_qa_shares_no_gcp_resource_name_with_its_original(env: str) -> None:
    """`qa` copied from staging or prod (same project, same environment) beside it: GCP sees no name twice. Its
    Kubernetes objects may repeat the original's: they live in its own cluster."""
    staging = StackFile.read(STACKS / f"Pulumi.{env}.yaml")
    qa = dataclasses.replace(staging, stack="qa")
    assert qa.load().environment == staging.load().environment == env
    assert qa.load().project == staging.load().project
    ours, ours_shared = gcp_identities(staging)
    theirs, theirs_shared = gcp_identities(qa)
    assert len(ours) == len(theirs) > 20
    assert {kind for kind, *_ in ours} >= {
        "gcp:container/cluster:Cluster",
        "gcp:compute/network:Network",
        "gcp:compute/address:Address",
        "gcp:storage/bucket:Bucket",
        "gcp:serviceaccount/account:Account",
        "gcp:storage/anywhereCache:AnywhereCache",
    }
    assert sorted(ours.keys() & theirs.keys()) == []
    assert len(ours_shared) == len(theirs_shared) > 0
    for item in ours_shared + theirs_shared:
        # Destroying one stack leaves what the other needs: APIs stay enabled, the project-level grant stays.
        kept = item["inputs"].get("disableOnDestroy") is False or item["options"]["retainOnDelete"] is True
        assert kept, item["urn"]
    qa_cfg = qa.load()
    assert resource_prefix(qa_cfg.cluster.name, "qa") == f"{qa_cfg.cluster.name}-qa"
    assert ("gcp:storage/bucket:Bucket", bucket_name(qa_cfg)) in theirs


@pytest.mark.parametrize(
    ("project", "stack", "bucket"),
    [
        ("acme-inference-dev", "dev", "acme-inference-dev-models"),
        ("acme-inference-dev", "qa", "acme-inference-dev-qa-models"),
        ("acme-inference-dev", "inference", "acme-inference-dev-inference-models"),
        ("acme-inference-dev", "inference-dev", "acme-inference-dev-inference-dev-models"),
        ("acme-shared", "staging", "acme-shared-staging-models"),
    ],
)
def test_the_default_bucket_drops_the_stack_only_where_it_ends_the_project_id(project: str, stack: str, bucket: str) -> None:
    assert default_bucket_name(project, stack) == bucket


def test_default_buckets_are_unique_per_stack_in_a_project() -> None:
    stacks = ("dev", "qa", "inference", "inference-dev", "acme", "models", "dev-2")
    buckets = [default_bucket_name("acme-inference-dev", s) for s in stacks]
    assert len(set(buckets)) == len(stacks)


@pytest.mark.parametrize("prefix", ["a-very-long-cluster-name-staging", "a-very-long-cluster-name-staging-2"])
def test_long_prefixes_keep_distinct_accounts(prefix: str) -> None:
    """Cut to GCP's 30 characters, two prefixes sharing their start still name distinct accounts."""
    other = prefix + "x"
    for account in (node_account_id, pathways_account_id):
        assert account(prefix) != account(other)
        assert re.fullmatch(r"[a-z][a-z0-9-]{4,28}[a-z0-9]", account(prefix)), account(prefix)


def test_the_stack_name_must_name_gcp_resources() -> None:
    assert problems(BASE, stack="QA_1") == [
        "stack name: the stack name is part of every GCP resource's name (`<cluster.name>-<stack>`, the model "
        "bucket); expected lowercase letters, digits and '-', starting with a letter, not ending with '-', got 'QA_1'"
    ]


def test_the_prefix_must_fit_a_cluster_name() -> None:
    stack = "s" * (PREFIX_MAX - len("inference"))
    [problem] = problems(BASE, stack=stack)
    assert problem.startswith(f"{NS}:cluster.name: the cluster would be named inference-{stack}")
    load_config(BASE, stack=stack[:-1])


def test_a_default_bucket_too_long_for_its_scratch_bucket_is_refused() -> None:
    """BASE runs Pathways: the default bucket and its scratch bucket must both fit GCS' 63 characters."""
    project, raw = BASE["gcp:project"], mutate(BASE, f"{NS}:cluster.name", "c")  # a short prefix: only the bucket fails
    longest = BUCKET_NAME_MAX - len(SCRATCH_SUFFIX) - len(default_bucket_name(project, ""))
    load_config(raw, stack="s" * longest)
    too_long = "s" * (longest + 1)
    [problem] = problems(raw, stack=too_long)
    name = default_bucket_name(project, too_long)
    assert problem.startswith(
        f"{NS}:model_storage.bucket_name: the Pathways scratch bucket {scratch_bucket_name(name)} would be longer than "
        f"GCS' {BUCKET_NAME_MAX} characters (the default bucket name: set model_storage.bucket_name)"
    )
    load_config(mutate(raw, f"{NS}:model_storage.bucket_name", "models-bucket"), stack=too_long)
