"""Compare two plans (two environments, or a plan before and after a change): the promotion view."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from tabulate import tabulate

MAX_CHANGES_PER_RESOURCE = 20


def _key(urn: str) -> str:
    """A resource's identity without the stack: urn:pulumi:STACK::PROJECT::TYPE::NAME -> TYPE::NAME."""
    return urn.split("::", 2)[2]


def _flatten(value: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(value, dict):
        out: dict[str, Any] = {}
        for k, v in value.items():
            out.update(_flatten(v, f"{prefix}.{k}" if prefix else str(k)))
        return out or {prefix: {}}
    if isinstance(value, list) and value and all(isinstance(v, dict) for v in value):
        out = {}
        for i, v in enumerate(value):
            out.update(_flatten(v, f"{prefix}[{i}]"))
        return out
    return {prefix: value}


def _neutral(flat: dict[str, Any], summary: dict[str, Any]) -> dict[str, Any]:
    """Replace the environment's own names (project id, resource prefix) so only real changes remain."""

    def swap(value: Any) -> Any:
        if isinstance(value, str):
            return value.replace(summary["project"], "<project>").replace(summary["prefix"], "<prefix>")
        if isinstance(value, list):
            return [swap(v) for v in value]
        return value

    return {path: swap(value) for path, value in flat.items()}


def load(folder: Path) -> tuple[dict[str, Any], dict[str, dict[str, Any]]]:
    summary = json.loads((folder / "summary.json").read_text())
    resources = {
        _key(r["urn"]): r for r in json.loads((folder / "resources.json").read_text()) if r["type"] != "pulumi:pulumi:Stack"
    }
    return summary, resources


def compare(a: Path, b: Path) -> str:
    sa, ra = load(a)
    sb, rb = load(b)
    name_a, name_b = sa["stack"], sb["stack"]
    lines = [
        f"# Diff: {name_a} → {name_b}",
        "",
        f"Values naming each environment's project (`{sa['project']}`, `{sb['project']}`) and resource prefix "
        f"(`{sa['prefix']}`, `{sb['prefix']}`) are compared as `<project>` and `<prefix>`.",
        "",
    ]
    ca, cb = sa["cost"], sb["cost"]
    lines += [
        tabulate(
            [
                ["resources", sa["resources"]["total"], sb["resources"]["total"]],
                [
                    "$/h (min..max)",
                    f"{ca['hourly_min']:.2f}..{ca['hourly_max']:.2f}",
                    f"{cb['hourly_min']:.2f}..{cb['hourly_max']:.2f}",
                ],
                ["$/month max", f"{ca['monthly_max']:,.2f}", f"{cb['monthly_max']:,.2f}"],
                [
                    "workloads",
                    ", ".join(w["name"] for w in sa["workloads"]) or "-",
                    ", ".join(w["name"] for w in sb["workloads"]) or "-",
                ],
                [
                    "accelerator pools",
                    ", ".join(p["pool"] for p in sa["accelerators"]) or "-",
                    ", ".join(p["pool"] for p in sb["accelerators"]) or "-",
                ],
            ],
            headers=["", name_a, name_b],
            tablefmt="github",
        ),
        "",
    ]
    only_a, only_b = sorted(ra.keys() - rb.keys()), sorted(rb.keys() - ra.keys())
    if only_a:
        lines += [f"## Only in {name_a}", ""] + [f"- `{k}`" for k in only_a] + [""]
    if only_b:
        lines += [f"## Only in {name_b}", ""] + [f"- `{k}`" for k in only_b] + [""]
    changed = []
    for key in sorted(ra.keys() & rb.keys()):
        fa = _neutral(_flatten({"inputs": ra[key]["inputs"], "options": ra[key]["options"]}), sa)
        fb = _neutral(_flatten({"inputs": rb[key]["inputs"], "options": rb[key]["options"]}), sb)
        diffs = [(p, fa.get(p), fb.get(p)) for p in sorted(fa.keys() | fb.keys()) if fa.get(p) != fb.get(p)]
        if diffs:
            changed.append((key, diffs))
    if changed:
        lines += ["## Changed", ""]
        for key, diffs in changed:
            lines.append(f"### `{key}`")
            rows = [[p, json.dumps(x), json.dumps(y)] for p, x, y in diffs[:MAX_CHANGES_PER_RESOURCE]]
            lines += ["", tabulate(rows, headers=["path", name_a, name_b], tablefmt="github")]
            if len(diffs) > MAX_CHANGES_PER_RESOURCE:
                lines.append(f"\n… and {len(diffs) - MAX_CHANGES_PER_RESOURCE} more")
            lines.append("")
    if not (only_a or only_b or changed):
        lines.append("No resource differences.")
    return "\n".join(lines).rstrip() + "\n"
