"""The stack files' secrets provider (plan: advisory in dev, exit 1 in staging and prod) and `gke-inference stacks`,
the list of stacks CI builds its matrices from."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner
from conftest import BASE, ENVIRONMENTS, STACKS, mutate

from infra.tooling.cli import main
from infra.tooling.plan import StackFile
from infra.tooling.stacks import listing, secrets_check

KMS = "gcpkms://projects/acme-test-1/locations/us-east5/keyRings/pulumi/cryptoKeys/{env}"


def stack_file(tmp: Path, env: str, provider: str | None, name: str | None = None) -> Path:
    document: dict[str, Any] = {"config": mutate(BASE, "gke-inference:environment", env)}
    if provider is not None:
        document["secretsprovider"] = provider.format(env=env)
    path = tmp / f"Pulumi.{name or env}.yaml"
    path.write_text(yaml.safe_dump(document))
    return path


def plan(path: Path, out: Path) -> tuple[int, str, dict[str, Any]]:
    result = CliRunner().invoke(main, ["plan", "--stack-file", str(path), "--out", str(out)])
    summary = out / path.name.split(".")[1] / "summary.json"
    return result.exit_code, result.output + result.stderr, json.loads(summary.read_text()) if summary.is_file() else {}


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_the_shipped_stack_files_name_their_environments_kms_key(env: str) -> None:
    stack = StackFile.read(STACKS / f"Pulumi.{env}.yaml")
    project = stack.config["gcp:project"]
    assert stack.secrets_provider == f"gcpkms://projects/{project}/locations/us-east5/keyRings/pulumi/cryptoKeys/{env}"
    assert project == f"acme-inference-{env}"
    assert not stack.encrypted_key  # Pulumi writes it on `stack init`; none is invented here
    assert secrets_check(stack.secrets_provider, stack.encrypted_key, env)["problem"] is None


@pytest.mark.parametrize(
    ("provider", "kind", "flagged"),
    [
        (None, "passphrase", "no secretsprovider"),
        ("passphrase", "passphrase", "passphrase"),
        ("default", "default", "CI authenticates to GCP only"),
        ("awskms://alias/pulumi?region=us-east-1", "awskms", "CI authenticates to GCP only"),
        ("gcpkms://projects/p/keyRings/r", "gcpkms", "expected gcpkms://projects/"),
        (KMS, "gcpkms", None),
    ],
)
def test_only_a_well_formed_gcpkms_key_passes(provider: str | None, kind: str, flagged: str | None) -> None:
    for env in ENVIRONMENTS:
        check = secrets_check(provider and provider.format(env=env), False, env)
        assert check["kind"] == kind
        if flagged is None:
            assert (check["problem"], check["enforcement"]) == (None, None)
        else:
            assert flagged in check["problem"]
            assert check["enforcement"] == ("advisory" if env == "dev" else "mandatory")


def shipped(tmp: Path, env: str, provider: str | None, **extra: Any) -> Path:
    """The shipped stack file of `env` with another secrets provider (None: the line removed)."""
    document = {**yaml.safe_load((STACKS / f"Pulumi.{env}.yaml").read_text()), **extra}
    document.pop("secretsprovider")
    if provider is not None:
        document["secretsprovider"] = provider.format(env=env)
    path = tmp / f"Pulumi.{env}.yaml"
    path.write_text(yaml.safe_dump(document))
    return path


@pytest.mark.parametrize("provider", [None, "passphrase"])
def test_dev_without_kms_is_an_advisory_prod_exits_1_with_the_plan_written(tmp_path: Path, provider: str | None) -> None:
    code, output, summary = plan(shipped(tmp_path, "dev", provider), tmp_path / "out")
    assert code == 0, output
    assert summary["secrets"]["enforcement"] == "advisory"
    assert "[advisory]  secretsprovider" in output
    code, output, summary = plan(shipped(tmp_path, "prod", provider), tmp_path / "out")
    assert code == 1, output
    assert "prod: prod needs a KMS secrets provider" in output
    assert summary["secrets"]["enforcement"] == "mandatory"  # the report is still written, like a mandatory policy
    assert "**mandatory**: " in (tmp_path / "out" / "prod" / "report.md").read_text()


@pytest.mark.parametrize("env", ["dev", "prod"])
def test_a_gcpkms_stack_plans_clean_and_the_report_shows_the_provider(tmp_path: Path, env: str) -> None:
    code, output, summary = plan(shipped(tmp_path, env, KMS, encryptedkey="CiQAfakewrappedkey"), tmp_path / "out")
    assert code == 0, output
    assert summary["secrets"] == {
        "provider": KMS.format(env=env),
        "kind": "gcpkms",
        "encryptedkey": True,
        "problem": None,
        "enforcement": None,
    }
    assert f"secrets provider: {KMS.format(env=env)}" in output
    report = (tmp_path / "out" / env / "report.md").read_text()
    assert f"Secrets provider `{KMS.format(env=env)}`; `encryptedkey` present." in report


def test_stacks_lists_every_stack_file_in_promotion_order_with_plans_policy_config(tmp_path: Path) -> None:
    for name, env in [("prod-eu", "prod"), ("prod", "prod"), ("dev", "dev"), ("staging", "staging")]:
        stack_file(tmp_path, env, KMS, name=name)
    (tmp_path / "policy.prod.json").write_text("{}")
    entries = [e.as_json() for e in listing(tmp_path)]
    assert [(e["stack"], e["environment"]) for e in entries] == [
        ("dev", "dev"),
        ("staging", "staging"),
        ("prod", "prod"),
        ("prod-eu", "prod"),
    ]
    prod_config = str((tmp_path / "policy.prod.json").resolve())
    assert [e["policy_config"] for e in entries][2:] == [prod_config, prod_config]
    # dev and staging have no policy.<env>.json in that folder: the repository's, as plan falls back to
    repo_dev = (STACKS / "policy.dev.json").resolve()
    assert entries[0]["policy_config"] in {str(repo_dev), "stacks/policy.dev.json"} or entries[0]["policy_config"] is None

    result = CliRunner().invoke(main, ["stacks", "--stacks-dir", str(tmp_path), "--github-output"])
    assert result.exit_code == 0, result.output
    lines = dict(line.split("=", 1) for line in result.output.splitlines())
    assert list(lines) == ["all", *ENVIRONMENTS]
    assert [e["stack"] for e in json.loads(lines["prod"])] == ["prod", "prod-eu"]
    assert json.loads(lines["all"]) == entries


def test_the_repositorys_stacks_use_the_policy_config_plan_uses(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(STACKS.parent)
    result = CliRunner().invoke(main, ["stacks"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.output) == [
        {"stack": env, "environment": env, "policy_config": f"stacks/policy.{env}.json"} for env in ENVIRONMENTS
    ]
    prod = CliRunner().invoke(main, ["stacks", "--environment", "prod"])
    assert [e["stack"] for e in json.loads(prod.output)] == ["prod"]


def test_a_stack_file_without_a_known_environment_exits_2(tmp_path: Path) -> None:
    (tmp_path / "Pulumi.odd.yaml").write_text(yaml.safe_dump({"config": {"gcp:project": "p"}}))
    result = CliRunner().invoke(main, ["stacks", "--stacks-dir", str(tmp_path)])
    assert result.exit_code == 2
    assert "gke-inference:environment is None" in result.stderr
