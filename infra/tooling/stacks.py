"""The stacks that exist: each stack file's environment, policy config and secrets provider.

One answer for `gke-inference plan` and for CI: the workflows build their matrix from `gke-inference stacks`
(every ``stacks/Pulumi.*.yaml``), so a new stack file is planned, previewed and deployed with the policy config
`plan` checks it with, in its environment's place in the promotion order.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, get_args

from infra.config.schema import Environment

ENVIRONMENTS: tuple[str, ...] = get_args(Environment)
"""In promotion order: dev, then staging, then prod (deploy.yml runs one job per environment in this order)."""
ENVIRONMENT_KEY = "gke-inference:environment"
KMS_REQUIRED = frozenset({"staging", "prod"})
"""Environments whose stack file must name a gcpkms:// secrets provider (plan exits 1); in dev it is an advisory."""
GCPKMS = re.compile(r"gcpkms://projects/[^/?]+/locations/[^/?]+/keyRings/[^/?]+/cryptoKeys/[^/?]+")
"""Pulumi's documented form: gcpkms://projects/<p>/locations/<l>/keyRings/<r>/cryptoKeys/<k> (no query)."""


def policy_config_path(stack_path: Path, environment: str, stacks_dir: Path) -> Path | None:
    """stacks/policy.<environment>.json beside the stack file, else in the stacks folder: the pack's levels for it."""
    name = f"policy.{environment}.json"
    for folder in (stack_path.parent, stacks_dir):
        if (folder / name).is_file():
            return folder / name
    return None


def secrets_check(secrets_provider: str | None, encrypted_key: bool, environment: str) -> dict[str, Any]:
    """The stack file's secrets provider, as the plan summary records it. `problem` is set unless it is a well-formed
    gcpkms:// key; its `enforcement` is mandatory in staging and prod (plan exits 1), advisory in dev."""
    provider = secrets_provider or None
    scheme = provider.split("://", 1)[0] if provider and "://" in provider else provider
    problem = None
    if provider is None:
        problem = (
            "no secretsprovider: on a self-managed backend (gs://) Pulumi falls back to a passphrase, which CI does not "
            "set; init the stack with --secrets-provider gcpkms://projects/<project>/locations/<region>/keyRings/pulumi/"
            "cryptoKeys/<env>"
        )
    elif scheme == "passphrase":
        problem = "secretsprovider is passphrase: CI sets no PULUMI_CONFIG_PASSPHRASE; use a gcpkms:// key per environment"
    elif scheme != "gcpkms":
        problem = f"secretsprovider {scheme}: CI authenticates to GCP only; use a gcpkms:// key per environment"
    elif not GCPKMS.fullmatch(provider):
        problem = f"secretsprovider {provider}: expected gcpkms://projects/<p>/locations/<l>/keyRings/<r>/cryptoKeys/<k>"
    return {
        "provider": provider,
        "kind": scheme or "passphrase",
        "encryptedkey": encrypted_key,
        "problem": problem,
        "enforcement": None if problem is None else "mandatory" if environment in KMS_REQUIRED else "advisory",
    }


@dataclass(frozen=True)
class StackEntry:
    stack: str
    environment: str
    policy_config: str | None
    """Relative to the working directory when under it (CI runs at the repository root), else absolute."""

    def as_json(self) -> dict[str, Any]:
        return {"stack": self.stack, "environment": self.environment, "policy_config": self.policy_config}


def _shown(path: Path) -> str:
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path.resolve())


def listing(stacks_dir: Path) -> list[StackEntry]:
    """Every stacks_dir/Pulumi.*.yaml in promotion order (environment rank, then stack name). Raises ValueError on a
    file whose environment is missing or unknown: CI must not guess where it deploys in the order."""
    from infra.tooling.plan import StackFile

    entries = []
    for path in sorted(stacks_dir.glob("Pulumi.*.yaml")):
        stack_file = StackFile.read(path)
        environment = stack_file.config.get(ENVIRONMENT_KEY)
        if environment not in ENVIRONMENTS:
            raise ValueError(f"{path}: {ENVIRONMENT_KEY} is {environment!r}, expected one of {', '.join(ENVIRONMENTS)}")
        config = policy_config_path(path, environment, stacks_dir)
        entries.append(StackEntry(stack_file.stack, environment, _shown(config) if config else None))
    return sorted(entries, key=lambda e: (ENVIRONMENTS.index(e.environment), e.stack))


def as_json(entries: list[StackEntry]) -> str:
    return json.dumps([e.as_json() for e in entries], separators=(",", ":"))


def github_output(entries: list[StackEntry]) -> str:
    """Lines for $GITHUB_OUTPUT: `all=` every stack, then one `<environment>=` list per environment (maybe `[]`)."""
    lines = [f"all={as_json(entries)}"]
    lines += [f"{env}={as_json([e for e in entries if e.environment == env])}" for env in ENVIRONMENTS]
    return "\n".join(lines)
