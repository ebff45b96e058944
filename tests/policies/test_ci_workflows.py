"""The GitHub workflows: actions pinned by full SHA with a version comment, least privilege, the stacks and policy configs
from `gke-inference stacks`, promotion order."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
WORKFLOWS = sorted((REPO / ".github" / "workflows").glob("*.yml"))
ENVIRONMENTS = ("dev", "staging", "prod")
USES = re.compile(r"^\s*-? *uses: (?P<ref>\S+)(?P<comment>.*)$", re.MULTILINE)


def load(path: Path) -> dict[str, Any]:
    document = yaml.safe_load(path.read_text())
    document["on"] = document.pop(True, document.get("on"))  # YAML 1.1 reads the key `on` as True
    return document


@pytest.mark.parametrize("path", WORKFLOWS, ids=lambda p: p.name)
def test_actions_are_pinned_by_sha_with_a_version_comment(path: Path) -> None:
    uses = list(USES.finditer(path.read_text()))
    assert uses
    for match in uses:
        ref = match["ref"]
        if ref.startswith("./"):
            continue  # a reusable workflow of this repository
        assert re.fullmatch(r"[\w.-]+/[\w.-]+@[0-9a-f]{40}", ref), ref
        assert re.search(r"# v\d+\.\d+\.\d+", match["comment"]), f"{ref} has no version comment"


@pytest.mark.parametrize("path", WORKFLOWS, ids=lambda p: p.name)
def test_least_privilege(path: Path) -> None:
    document = load(path)
    assert document["permissions"] == {"contents": "read"}
    for name, job in document["jobs"].items():
        granted = job.get("permissions", {})
        assert set(granted) <= {"contents", "id-token"}, name
        assert granted.get("contents", "read") == "read", name


def expression(text: str) -> str:
    return "${{ " + text + " }}"


def matrix(output: str) -> str:
    return expression(f"fromJSON(needs.stacks.outputs.{output})")


def stacks_job(document: dict[str, Any]) -> dict[str, Any]:
    """The first job: `gke-inference stacks --github-output` into its outputs (`all` and one per environment)."""
    job = document["jobs"]["stacks"]
    [step] = [s for s in job["steps"] if s.get("id") == "stacks"]
    assert step["run"] == '.venv/bin/gke-inference stacks --github-output >> "$GITHUB_OUTPUT"'
    assert all(v == expression(f"steps.stacks.outputs.{k}") for k, v in job["outputs"].items())
    return job


def test_no_workflow_names_a_stack_or_builds_a_policy_config_path() -> None:
    """Stacks and their policy configs come from `gke-inference stacks`, the function plan uses, never a list here."""
    for path in WORKFLOWS:
        text = path.read_text()
        assert "[dev, staging, prod]" not in text, path.name
        assert not re.search(r"policy\.\$\{\{", text), path.name
        for match in re.finditer(r"policyPackConfigs: (.*)", text):
            assert match[1] in {"${{ matrix.policy_config }}", "${{ inputs.policy_config }}"}, path.name


def test_pull_requests_plan_and_preview_every_stack_with_its_policy_config() -> None:
    pr = load(next(p for p in WORKFLOWS if p.name == "pull-request.yml"))
    assert pr["concurrency"]["cancel-in-progress"] is True
    assert "all" in stacks_job(pr)["outputs"]
    preview = pr["jobs"]["preview"]
    pulumi = next(s for s in preview["steps"] if s.get("uses", "").startswith("pulumi/actions@"))["with"]
    assert (pulumi["command"], pulumi["policyPacks"]) == ("preview", "policies")
    assert pulumi["policyPackConfigs"] == "${{ matrix.policy_config }}"
    auth = next(s for s in preview["steps"] if s.get("uses", "").startswith("google-github-actions/auth@"))["with"]
    assert set(auth) == {"workload_identity_provider", "service_account"}  # no credentials_json
    for name in ("plan", "preview"):
        job = pr["jobs"][name]
        assert "stacks" in job["needs"], name
        assert job["strategy"]["matrix"] == {"include": matrix("all")}, name


def test_deploys_run_in_promotion_order_through_environments() -> None:
    """One job per environment rank (dev, staging, prod), each a matrix of that environment's stacks in parallel,
    each after the one before; a stack's GitHub environment is its environment, so every prod stack waits for prod's
    reviewers (a stack-named one would be created unprotected)."""
    deploy = load(next(p for p in WORKFLOWS if p.name == "deploy.yml"))
    assert deploy["concurrency"]["cancel-in-progress"] is False
    jobs = deploy["jobs"]
    assert set(stacks_job(deploy)["outputs"]) == {"all", *ENVIRONMENTS}
    assert [jobs[e]["needs"] for e in ENVIRONMENTS] == [["stacks", "check"], ["stacks", "dev"], ["stacks", "staging"]]
    for env in ENVIRONMENTS:
        job = jobs[env]
        assert job["strategy"]["matrix"] == {"include": matrix(env)}
        assert job["if"] == expression(f"!failure() && !cancelled() && needs.stacks.outputs.{env} != '[]'")
        assert job["uses"] == "./.github/workflows/pulumi-up.yml"
        assert job["with"] == {
            "stack": "${{ matrix.stack }}",
            "environment": "${{ matrix.environment }}",
            "policy_config": "${{ matrix.policy_config }}",
        }
    up = load(next(p for p in WORKFLOWS if p.name == "pulumi-up.yml"))
    assert set(up["on"]["workflow_call"]["inputs"]) == {"stack", "environment", "policy_config"}
    assert up["jobs"]["up"]["environment"] == "${{ inputs.environment }}"


def test_the_matrix_the_stacks_job_emits_is_every_stack_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """What CI would deploy: the repository's stack files, in promotion order, with plan's policy config."""
    from click.testing import CliRunner

    from infra.tooling.cli import main

    monkeypatch.chdir(REPO)
    result = CliRunner().invoke(main, ["stacks", "--github-output"])
    assert result.exit_code == 0, result.output
    outputs = {k: json.loads(v) for k, v in (line.split("=", 1) for line in result.output.splitlines())}
    stacks = sorted(p.name.split(".")[1] for p in (REPO / "stacks").glob("Pulumi.*.yaml"))
    assert sorted(e["stack"] for e in outputs["all"]) == stacks
    assert outputs["all"] == [e for env in ENVIRONMENTS for e in outputs[env]]
    assert all((REPO / e["policy_config"]).is_file() for e in outputs["all"])


def steps_of(path: Path) -> list[tuple[str, list[dict[str, Any]]]]:
    return [(name, job["steps"]) for name, job in load(path)["jobs"].items() if "steps" in job]


@pytest.mark.parametrize("path", WORKFLOWS, ids=lambda p: p.name)
def test_every_job_installs_from_the_lock_with_the_pinned_uv(path: Path) -> None:
    """setup-uv (which reads pyproject.toml's required-version) comes before the first command, and UV_LOCKED makes
    every `uv sync` (make's and Pulumi's own) install uv.lock or fail."""
    assert load(path)["env"]["UV_LOCKED"] == "1"
    for name, steps in steps_of(path):
        first_run = next(i for i, s in enumerate(steps) if "run" in s)
        setup = [i for i, s in enumerate(steps) if s.get("uses", "").startswith("astral-sh/setup-uv@")]
        assert setup and setup[0] < first_run, name
        assert "version" not in steps[setup[0]].get("with", {}), f"{name}: the uv version is pyproject.toml's"


@pytest.mark.parametrize("path", [p for p in WORKFLOWS if "pulumi/actions@" in p.read_text()], ids=lambda p: p.name)
def test_the_pulumi_cli_is_the_locked_sdk_release(path: Path) -> None:
    for name, steps in steps_of(path):
        for i, step in enumerate(steps):
            if not step.get("uses", "").startswith("pulumi/actions@"):
                continue
            ref = re.fullmatch(r"\$\{\{ steps\.(?P<id>[\w-]+)\.outputs\.version \}\}", step["with"]["pulumi-version"])
            assert ref, name
            [source] = [s for s in steps[:i] if s.get("id") == ref["id"]]
            assert "tools/locked-version pulumi" in source["run"], name
