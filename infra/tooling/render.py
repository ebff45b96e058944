"""Write a plan capture to disk: resources.json, manifests/, summary.json, report.md."""

from __future__ import annotations

import functools
import json
import re
import shutil
import tempfile
from pathlib import Path
from typing import Any

import kubernetes_validate
import yaml

from infra.tooling import report
from infra.tooling.plan import LAYERS, SECRET, Capture
from infra.versions import KUBERNETES_MINOR

# kubernetes-validate re-reads and re-parses its JSON schemas (the 1.5 MB definitions file included) on every
# call; they never change within a process, so read each once. 90 % of a plan's render time otherwise.
kubernetes_validate.utils.schema_contents = functools.cache(kubernetes_validate.utils.schema_contents)

REFERENCE_TYPES = ("kubernetes:helm.sh/", "kubernetes:yaml/")
"""Provider-side components: the provider renders them, so the plan lists them as references."""


def dump_json(value: Any) -> str:
    return json.dumps(value, indent=2, sort_keys=True) + "\n"


def kubernetes_objects(resources: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(objects the stack creates, chart/remote-YAML references) from the captured resources."""
    objects, references = [], []
    for r in resources:
        if not r["type"].startswith("kubernetes:"):
            continue
        inputs = r["inputs"]
        if r["type"].startswith(REFERENCE_TYPES):
            references.append(
                {
                    "resource": r["name"],
                    "type": r["type"],
                    **{
                        k: inputs.get(k)
                        for k in ("chart", "version", "namespace", "values", "file", "files", "repositoryOpts")
                        if k in inputs
                    },
                }
            )
        else:
            objects.append(inputs)
    return objects, references


def schema_problems(objects: list[dict[str, Any]]) -> list[str]:
    """Objects of built-in kinds checked against the Kubernetes OpenAPI schema (strict: no unknown
    fields). Custom resources have no schema here; tests check them against their upstream CRDs."""
    problems = []
    for obj in objects:
        try:
            kubernetes_validate.validate(obj, KUBERNETES_MINOR, strict=True)
        except kubernetes_validate.SchemaNotFoundError:
            continue
        except kubernetes_validate.ValidationError as error:
            meta = obj.get("metadata") or {}
            problems.append(f"{obj.get('kind')} {meta.get('namespace', '')}/{meta.get('name')}: {error.message}")
    return problems


def _file_name(obj: dict[str, Any]) -> str:
    meta = obj.get("metadata") or {}
    parts = [obj.get("kind", "Object"), meta.get("namespace", "cluster"), meta.get("name", "unnamed")]
    return re.sub(r"[^A-Za-z0-9_.-]", "_", "_".join(str(p) for p in parts)) + ".yaml"


def write(
    capture: Capture, out: Path, policy: dict[str, Any] | None = None, secrets: dict[str, Any] | None = None
) -> dict[str, Any]:
    """Write the stack's folder under `out` atomically (no stale files survive); return the summary. `secrets` is the
    stack file's secrets-provider check (infra.tooling.stacks.secrets_check)."""
    resources = [r.as_json() for r in capture.resources]
    objects, references = kubernetes_objects(resources)
    summary = report.summarize(capture.config, resources, policy)
    if secrets is not None:
        summary["secrets"] = secrets
    summary["manifests"] = {"objects": len(objects), "references": len(references), "schema_problems": schema_problems(objects)}
    out.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{capture.stack}-", dir=out))
    write_resources(staging, resources, objects, references)
    (staging / "summary.json").write_text(dump_json(summary))
    (staging / "report.md").write_text(report.markdown(summary, report.mermaid(capture.config)))
    target = out / capture.stack
    for layer in LAYERS:
        folder = staging / layer
        if layer in capture.outputs:
            write_layer(folder, [r for r in resources if r["layer"] == layer], capture.outputs[layer])
        elif (target / layer).is_dir():  # planned alone: the other layer's saved plan stays beside it
            shutil.copytree(target / layer, folder)
    if target.exists():
        shutil.rmtree(target)
    staging.rename(target)
    return summary


SECRET_OUTPUTS = frozenset({"kubeconfig"})
"""Stack outputs never written in clear (the contract's secret ones)."""


def write_layer(folder: Path, resources: list[dict[str, Any]], outputs: dict[str, Any]) -> None:
    """One stack's own view: its resources, its manifests and its outputs (what a StackReference reads; secrets
    masked), so one layer can be planned again against the other's saved plan."""
    folder.mkdir()
    write_resources(folder, resources, *kubernetes_objects(resources))
    (folder / "outputs.json").write_text(dump_json({k: SECRET if k in SECRET_OUTPUTS else v for k, v in outputs.items()}))


def write_resources(
    folder: Path, resources: list[dict[str, Any]], objects: list[dict[str, Any]], references: list[dict[str, Any]]
) -> None:
    """resources.json, and manifests/ with every Kubernetes object (and the remote manifests it only references)."""
    (folder / "resources.json").write_text(dump_json(resources))
    manifests = folder / "manifests"
    manifests.mkdir()
    for obj in objects:
        (manifests / _file_name(obj)).write_text(yaml.safe_dump(obj, sort_keys=True))
    if references:
        (manifests / "references.yaml").write_text(yaml.safe_dump({"references": references}, sort_keys=True))
