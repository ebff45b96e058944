"""The bootstrap renders under mocks, and its outputs are exactly what the stack files and the workflows reference."""

from __future__ import annotations

import re
from pathlib import Path

import yaml
from click.testing import CliRunner
from conftest import REPO, STACKS

from infra.bootstrap.composition import environments, kms_keys
from infra.tooling.cli import main
from infra.tooling.plan import StackFile, execute

CONFIG = {
    "bootstrap:admin_project": "acme-inference-admin",
    "bootstrap:region": "us-east5",
    "bootstrap:github_repository": "acme/gke-inference",
    "bootstrap:state_bucket": "acme-pulumi-state",
}


def bootstrap():  # type: ignore[no-untyped-def]
    return execute(StackFile("bootstrap", CONFIG, frozenset()), layer="bootstrap")


def test_the_outputs_are_every_variable_the_workflows_read() -> None:
    monitor = bootstrap()
    read = {m for wf in (REPO / ".github" / "workflows").glob("*.yml") for m in re.findall(r"vars\.([A-Z_]+)", wf.read_text())}
    assert read and set(monitor.stack_outputs) == read
    assert monitor.stack_outputs["PULUMI_BACKEND_URL"] == "gs://acme-pulumi-state"
    # One deploy account per environment the stack files name: each GitHub environment's GCP_DEPLOY_SERVICE_ACCOUNT.
    named = {env.environment for env in environments(STACKS)}
    assert set(monitor.stack_outputs["GCP_DEPLOY_SERVICE_ACCOUNT"]) == named == {"dev", "staging", "prod"}


def test_every_kms_key_a_stack_file_names_is_created() -> None:
    """Each key a stack file references (project, location, ring and key), created and protected."""
    monitor = bootstrap()
    rings = {f"{r.name}-id": r.inputs for r in monitor.captured if r.type == "gcp:kms/keyRing:KeyRing"}
    created = set()
    for key in (r for r in monitor.captured if r.type == "gcp:kms/cryptoKey:CryptoKey"):
        ring = rings[key.inputs["keyRing"]]
        created.add(
            f"projects/{ring['project']}/locations/{ring['location']}/keyRings/{ring['name']}/cryptoKeys/{key.inputs['name']}"
        )
        assert key.options["protect"]
    named = {k for env in environments(STACKS) for k in env.keys}
    assert named and named == created
    for path in STACKS.glob("Pulumi.*.yaml"):
        assert set(kms_keys(yaml.safe_load(path.read_text()))) <= named


def test_deploy_accounts_act_only_for_their_github_environment() -> None:
    monitor = bootstrap()
    bindings = [r for r in monitor.captured if r.type == "gcp:serviceaccount/iAMMember:IAMMember"]
    deploy = [b for b in bindings if b.name.endswith("-deploy-wif")]
    assert deploy and all(
        b.inputs["member"].endswith(f"/attribute.environment/{b.name.removesuffix('-deploy-wif')}") for b in deploy
    )
    [provider] = [r for r in monitor.captured if r.type == "gcp:iam/workloadIdentityPoolProvider:WorkloadIdentityPoolProvider"]
    assert provider.inputs["attributeCondition"] == 'assertion.repository == "acme/gke-inference"'


def test_quota_is_what_the_pools_scale_to(tmp_path: Path) -> None:
    cfg = StackFile.read(STACKS / "Pulumi.prod.yaml").load()
    lines = CliRunner().invoke(main, ["quota", "prod"]).output.splitlines()
    chips = sum(t.slice.chips * t.config.max_slices for t in cfg.tpu_pools.values())
    assert f"TPU v6e chips in {cfg.region}: {chips}" in lines
    assert any(line.startswith("reservation v6e-4x4-prod") for line in lines)
