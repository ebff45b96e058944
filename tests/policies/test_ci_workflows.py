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
