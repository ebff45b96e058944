"""checkov skips in the rendered manifests: each names one check and says why, where checkov reads it."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml
from conftest import STACKS

from infra.tooling.plan import StackFile, run
from infra.tooling.render import write

SKIP_KEY = "checkov.io/skip"
SKIP_VALUE = re.compile(r"CKV2?_K8S_\d+=(?P<reason>[^=]*)")
MIN_REASON = 20


def skips(meta: dict[str, Any] | None) -> dict[str, str]:
    return {k: v for k, v in ((meta or {}).get("annotations") or {}).items() if SKIP_KEY in k}


def pod_template(obj: dict[str, Any]) -> dict[str, Any] | None:
    """The pod template checkov scans as a Pod of its own (Deployment, Job, StatefulSet...; CronJob's job's)."""
    spec = obj.get("spec") or {}
    if obj["kind"] == "CronJob":
        spec = (spec.get("jobTemplate") or {}).get("spec") or {}
    template = spec.get("template")
    return template if isinstance(template, dict) and "spec" in template else None


def test_every_checkov_skip_names_a_check_and_its_reason_on_object_and_pod_template(tmp_path: Path) -> None:
    problems, seen = [], 0
    for stack_file in sorted(STACKS.glob("Pulumi.*.yaml")):
        stack = stack_file.name.split(".")[1]
        write(run(StackFile.read(stack_file)), tmp_path)
        for path in sorted((tmp_path / stack / "manifests").glob("*.yaml")):
            obj = yaml.safe_load(path.read_text())
            if path.name == "references.yaml":
                continue
            own = skips(obj.get("metadata"))
            template = pod_template(obj)
            tmeta = (template or {}).get("metadata") or {}
            for key, value in {**own, **skips(tmeta)}.items():
                seen += 1
                m = SKIP_VALUE.fullmatch(str(value))
                if not m or len(m["reason"].strip()) < MIN_REASON:
                    problems.append(f"{stack}/{path.name}: {key}: {value!r} is not CKV(2)_K8S_<n>=<reason of {MIN_REASON}+>")
            # checkov copies the object's annotations to its pod template only when the template has none.
            if tmeta.get("annotations") and skips(tmeta) != own:
                problems.append(f"{stack}/{path.name}: pod template skips {skips(tmeta)} differ from the object's {own}")
    assert seen > 0, "no checkov skip annotation rendered at all: is the key still checkov.io/skipN?"
    assert not problems, "\n".join(problems)
