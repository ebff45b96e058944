"""The bootstrap program: the state bucket, KMS keys, GitHub's Workload Identity and the deploy accounts every
environment's stacks and workflows reference (infra/bootstrap/composition.py). Run once, with local state."""

from pathlib import Path

import pulumi

from infra.bootstrap.composition import NAMESPACE, build

config = pulumi.Config(NAMESPACE)
outputs = build(
    admin_project=config.require("admin_project"),
    region=config.require("region"),
    repository=config.require("github_repository"),
    state_bucket=config.require("state_bucket"),
    stacks=Path(__file__).resolve().parents[2] / "stacks",
)
for key, value in outputs.items():
    pulumi.export(key, value)
