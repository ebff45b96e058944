"""The GitHub workflows: actions pinned by full SHA with a version comment, least privilege, policy pack per stack."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

WORKFLOWS = sorted((Path(__file__).resolve().parents[2] / ".github" / "workflows").glob("*.yml"))
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


def test_pull_requests_plan_and_preview_every_stack_with_its_policy_config() -> None:
    pr = load(next(p for p in WORKFLOWS if p.name == "pull-request.yml"))
    assert pr["concurrency"]["cancel-in-progress"] is True
    preview = pr["jobs"]["preview"]
    pulumi = next(s for s in preview["steps"] if s.get("uses", "").startswith("pulumi/actions@"))["with"]
    assert (pulumi["command"], pulumi["policyPacks"]) == ("preview", "policies")
    assert pulumi["policyPackConfigs"] == "stacks/policy.${{ matrix.stack }}.json"
    auth = next(s for s in preview["steps"] if s.get("uses", "").startswith("google-github-actions/auth@"))["with"]
    assert set(auth) == {"workload_identity_provider", "service_account"}  # no credentials_json
    stacks = {p.name.split(".")[1] for p in (WORKFLOWS[0].parents[2] / "stacks").glob("Pulumi.*.yaml")}
    assert set(preview["strategy"]["matrix"]["stack"]) == set(pr["jobs"]["plan"]["strategy"]["matrix"]["stack"]) == stacks


def test_deploys_run_in_promotion_order_through_environments() -> None:
    deploy = load(next(p for p in WORKFLOWS if p.name == "deploy.yml"))
    assert deploy["concurrency"]["cancel-in-progress"] is False
    jobs = deploy["jobs"]
    assert [jobs[e]["needs"] for e in ("dev", "staging", "prod")] == ["check", "dev", "staging"]
    assert all(jobs[e]["with"]["stack"] == e for e in ("dev", "staging", "prod"))
    up = load(next(p for p in WORKFLOWS if p.name == "pulumi-up.yml"))["jobs"]["up"]
    assert up["environment"] == "${{ inputs.stack }}"


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
