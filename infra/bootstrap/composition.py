"""What must exist before the first `pulumi up` of any environment, as code: run once, with local state.

Read from the repository's own files, so its outputs are exactly what they reference: every environment is a
`stacks/Pulumi.<stack>.yaml` (its project, region, the Cloud KMS keys its config names, its `gcpkms://` secrets
provider), and the workflows read the repository variables this program exports (`vars.NAME`). It creates:
  - the Pulumi state bucket (versioned, uniform access, no public access);
  - every Cloud KMS key a stack file names (etcd secrets, model bucket CMEK, the stack's secrets provider);
  - GitHub's Workload Identity pool and OIDC provider, limited to the repository;
  - a deploy service account per environment (only its GitHub environment may act as it) with the roles a full
    `up` of both stacks needs, and one read-only preview account for pull requests.
Quota and reservations are not API objects a program should create: `gke-inference quota STACK` prints what each
environment needs (README, Prerequisites).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pulumi
import pulumi_gcp as gcp
import yaml

NAMESPACE = "bootstrap"
KEY = re.compile(r"^projects/([^/]+)/locations/([^/]+)/keyRings/([^/]+)/cryptoKeys/([^/]+)$")
GITHUB_ISSUER = "https://token.actions.githubusercontent.com"
DEPLOY_ROLES = (
    "roles/compute.networkAdmin",
    "roles/compute.securityAdmin",
    "roles/container.admin",
    "roles/iam.serviceAccountAdmin",
    "roles/iam.serviceAccountUser",
    "roles/resourcemanager.projectIamAdmin",
    "roles/serviceusage.serviceUsageAdmin",
    "roles/storage.admin",
    "roles/cloudkms.admin",
    "roles/certificatemanager.viewer",
    "roles/monitoring.viewer",
)
"""What `pulumi up` of both stacks creates or binds: network and firewall, the cluster and its Kubernetes objects
(container.admin includes container.clusters.connect for the DNS endpoint), service accounts and their project
roles, APIs, buckets and their IAM, KMS grants to service agents; certificate and metrics reads."""
PREVIEW_ROLES = ("roles/viewer", "roles/container.viewer", "roles/iam.securityReviewer")
"""A pull request's preview reads every resource, the cluster's objects and IAM policies, and changes nothing."""


@dataclass(frozen=True)
class Environment:
    """One stack file as the bootstrap reads it."""

    stack: str
    environment: str
    """`gke-inference:environment`: the GitHub environment its deploy job runs in (pulumi-up.yml)."""
    project: str
    region: str
    keys: tuple[str, ...]
    """Every Cloud KMS key resource name the file references (config values and its secrets provider)."""
    secrets_provider: str | None


def kms_keys(value: Any) -> Iterable[str]:
    """Every KMS key resource name anywhere in a config value."""
    if isinstance(value, str):
        name = value.removeprefix("gcpkms://")
        if KEY.match(name):
            yield name
    elif isinstance(value, Mapping):
        for v in value.values():
            yield from kms_keys(v)
    elif isinstance(value, list):
        for v in value:
            yield from kms_keys(v)


def environments(stacks: Path) -> list[Environment]:
    out = []
    for path in sorted(stacks.glob("Pulumi.*.yaml")):
        document = yaml.safe_load(path.read_text()) or {}
        config, provider = document.get("config") or {}, document.get("secretsprovider")
        keys = sorted({*kms_keys(config), *kms_keys(provider or "")})
        stack = path.name.removeprefix("Pulumi.").removesuffix(".yaml")
        environment = str(config.get("gke-inference:environment", stack))
        out.append(Environment(stack, environment, config["gcp:project"], config["gcp:region"], tuple(keys), provider))
    return out


def _keys(env: Environment) -> None:
    """The key rings and keys the stack file names, protected: destroying a key loses what it encrypted."""
    rings: dict[tuple[str, str, str], gcp.kms.KeyRing] = {}
    for name in env.keys:
        match = KEY.match(name)
        assert match is not None
        project, location, ring, key = match.groups()
        if (project, location, ring) not in rings:
            rings[(project, location, ring)] = gcp.kms.KeyRing(
                f"{env.stack}-{ring}-{location}", project=project, location=location, name=ring
            )
        gcp.kms.CryptoKey(
            f"{env.stack}-{ring}-{key}",
            key_ring=rings[(project, location, ring)].id,
            name=key,
            rotation_period="7776000s",  # 90 days
            opts=pulumi.ResourceOptions(protect=True),
        )


def build(admin_project: str, region: str, repository: str, state_bucket: str, stacks: Path) -> dict[str, Any]:
    """Every prerequisite; returns the repository variables the workflows read, and each stack's secrets provider."""
    bucket = gcp.storage.Bucket(
        "state",
        project=admin_project,
        name=state_bucket,
        location=region,
        uniform_bucket_level_access=True,
        public_access_prevention="enforced",
        versioning=gcp.storage.BucketVersioningArgs(enabled=True),
        opts=pulumi.ResourceOptions(protect=True),
    )
    pool = gcp.iam.WorkloadIdentityPool("github", project=admin_project, workload_identity_pool_id="github")
    provider = gcp.iam.WorkloadIdentityPoolProvider(
        "github",
        project=admin_project,
        workload_identity_pool_id=pool.workload_identity_pool_id,
        workload_identity_pool_provider_id="github",
        attribute_mapping={
            "google.subject": "assertion.sub",
            "attribute.repository": "assertion.repository",
            "attribute.environment": "assertion.environment",
        },
        attribute_condition=f'assertion.repository == "{repository}"',
        oidc=gcp.iam.WorkloadIdentityPoolProviderOidcArgs(issuer_uri=GITHUB_ISSUER),
    )
    principals = pool.name.apply(lambda name: f"principalSet://iam.googleapis.com/{name}")
    preview = gcp.serviceaccount.Account("preview", project=admin_project, account_id="gke-inference-preview")
    gcp.serviceaccount.IAMMember(
        "preview-wif",
        service_account_id=preview.name,
        role="roles/iam.workloadIdentityUser",
        member=principals.apply(lambda p: f"{p}/attribute.repository/{repository}"),
    )
    deploy_accounts: dict[str, gcp.serviceaccount.Account] = {}
    for env in environments(stacks):
        _keys(env)
        if env.environment not in deploy_accounts:
            # One deploy account per GitHub environment (every stack of it deploys as it), in the admin project; only
            # a job of that GitHub environment may act as it.
            account = gcp.serviceaccount.Account(
                f"{env.environment}-deploy", project=admin_project, account_id=f"gke-inference-deploy-{env.environment}"[:30]
            )
            gcp.serviceaccount.IAMMember(
                f"{env.environment}-deploy-wif",
                service_account_id=account.name,
                role="roles/iam.workloadIdentityUser",
                member=pulumi.Output.concat(principals, "/attribute.environment/", env.environment),
            )
            deploy_accounts[env.environment] = account
        deploy = deploy_accounts[env.environment]
        for name, account, roles in (("deploy", deploy, DEPLOY_ROLES), ("preview", preview, PREVIEW_ROLES)):
            for role in roles:
                gcp.projects.IAMMember(
                    f"{env.stack}-{name}-{role.split('/')[1]}",
                    project=env.project,
                    role=role,
                    member=account.email.apply(lambda e: f"serviceAccount:{e}"),
                )
        if env.secrets_provider:
            key_id = env.secrets_provider.removeprefix("gcpkms://")
            for name, account in (("deploy", deploy), ("preview", preview)):
                gcp.kms.CryptoKeyIAMMember(
                    f"{env.stack}-{name}-secrets",
                    crypto_key_id=key_id,
                    role="roles/cloudkms.cryptoKeyEncrypterDecrypter",
                    member=account.email.apply(lambda e: f"serviceAccount:{e}"),
                )
    emails = {name: account.email for name, account in deploy_accounts.items()}
    # Previews lock the state as `up` does: every account reads and writes the state bucket's objects.
    for name, email in {**emails, "preview": preview.email}.items():
        gcp.storage.BucketIAMMember(
            f"state-{name}",
            bucket=bucket.name,
            role="roles/storage.objectUser",
            member=email.apply(lambda e: f"serviceAccount:{e}"),
        )
    return {
        "PULUMI_BACKEND_URL": bucket.name.apply(lambda n: f"gs://{n}"),
        "GCP_WORKLOAD_IDENTITY_PROVIDER": provider.name,
        "GCP_PREVIEW_SERVICE_ACCOUNT": preview.email,
        "GCP_DEPLOY_SERVICE_ACCOUNT": emails,
    }
