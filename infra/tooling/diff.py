"""Compare two plans: a stack before and after a change (what `pulumi up` will do), or two environments (promotion).

Each resource is marked create, update, replace or delete (infra/tooling/replacements.py). For two plans of one stack,
what `up` would refuse or break is an error: a protected resource replaced or deleted, a replacement that collides
with the object it replaces, an update the API refuses. Replacing an accelerator node pool states what it costs:
its nodes drained and its capacity away while a new pool is provisioned. Values naming an environment (project,
resource prefix, environment, stack) are compared neutrally everywhere, keys included; list elements are matched
by their name (or key, port), not their position, and a changed element of a list of strings is shown by itself.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tabulate import tabulate

from infra.catalog import Catalog
from infra.catalog import load as load_catalog
from infra.tooling.replacements import Change, classify

MAX_CHANGES_PER_RESOURCE = 20
IDENTITY_KEYS = ("name", "key", "resourceType", "port", "containerPort", "type", "cidr", "role")
"""Fields that name a list element, in order of preference: elements are matched by the first all of them carry."""
NODE_POOL = "gcp:container/nodePool:NodePool"


def _key(urn: str) -> str:
    """A resource's identity without the environment: urn:pulumi:STACK::gke-inference-LAYER::TYPE::NAME ->
    LAYER:TYPE::NAME (both stacks have providers named gcp and k8s)."""
    _, project, rest = urn.split("::", 2)
    return f"{project.removeprefix('gke-inference-')}:{rest}"


def _element_key(items: list[dict[str, Any]]) -> str | None:
    for k in IDENTITY_KEYS:
        values = [json.dumps(i.get(k), sort_keys=True) for i in items]
        if all(k in i for i in items) and len(set(values)) == len(values):
            return k
    return None


def flatten(value: Any, prefix: str = "") -> dict[str, Any]:
    """Leaf paths of a value; list elements of dicts keyed `[name=x]` where they have a naming field, else by index."""
    if isinstance(value, dict):
        out: dict[str, Any] = {}
        for k, v in value.items():
            out.update(flatten(v, f"{prefix}.{k}" if prefix else str(k)))
        return out or {prefix: {}}
    if isinstance(value, list) and value and all(isinstance(v, dict) for v in value):
        named = _element_key(value)
        out = {}
        for i, v in enumerate(value):
            label = f"{named}={v[named]}" if named else str(i)
            out.update(flatten(v, f"{prefix}[{label}]"))
        return out
    return {prefix: value}


@dataclass(frozen=True)
class Plan:
    folder: Path
    summary: dict[str, Any]
    resources: dict[str, dict[str, Any]]

    @classmethod
    def load(cls, folder: Path) -> Plan:
        summary = json.loads((folder / "summary.json").read_text())
        records = json.loads((folder / "resources.json").read_text())
        return cls(folder, summary, {_key(r["urn"]): r for r in records if r["type"] != "pulumi:pulumi:Stack"})

    def neutral(self, value: Any) -> Any:
        """The value with this environment's own names replaced (in strings and keys alike)."""
        s = self.summary
        names = [(s["project"], "<project>"), (s["prefix"], "<prefix>"), (s["environment"], "<env>"), (s["stack"], "<stack>")]

        def swap(text: str) -> str:
            for name, placeholder in names:
                text = re.sub(rf"(?<![A-Za-z0-9]){re.escape(name)}(?![A-Za-z0-9])", placeholder, text)
            return text

        if isinstance(value, str):
            return swap(value)
        if isinstance(value, list):
            return [self.neutral(v) for v in value]
        if isinstance(value, dict):
            return {swap(k): self.neutral(v) for k, v in value.items()}
        return value

    def fields(self, key: str) -> dict[str, Any]:
        record = self.resources[key]
        return flatten(self.neutral({"inputs": record["inputs"], "options": record["options"]}))


def _changed_paths(a: Plan, b: Plan, key: str) -> list[tuple[str, Any, Any]]:
    fa, fb = a.fields(key), b.fields(key)
    out = []
    for path in sorted(fa.keys() | fb.keys()):
        if fa.get(path) != fb.get(path) and path.startswith("inputs."):
            out.append((path.removeprefix("inputs."), fa.get(path), fb.get(path)))
    return out


def _option_paths(a: Plan, b: Plan, key: str) -> list[tuple[str, Any, Any]]:
    fa, fb = a.fields(key), b.fields(key)
    return [
        (p, fa.get(p), fb.get(p)) for p in sorted(fa.keys() | fb.keys()) if p.startswith("options.") and fa.get(p) != fb.get(p)
    ]


def pool_cost(record: dict[str, Any], catalog: Catalog) -> str | None:
    """What replacing or deleting an accelerator node pool costs: its nodes and accelerators drained, its capacity
    away for the catalog's provisioning time of a new node or slice (then the workloads' own start)."""
    inputs = record["inputs"]
    config = inputs.get("nodeConfig") or {}
    machine = config.get("machineType", "")
    zones = max(1, len(inputs.get("nodeLocations") or []))
    # Both counts are per zone of the pool.
    nodes = zones * (inputs.get("nodeCount") or (inputs.get("autoscaling") or {}).get("maxNodeCount") or 0)
    gpus = sum(a.get("count", 0) for a in config.get("guestAccelerators") or [])
    tpu = next((g for g in catalog.tpus.values() if machine in g.machine_types), None)
    if tpu is None and not gpus:
        return None
    kind = "tpu" if tpu else "gpu"
    per_node = tpu.machine_types[machine] if tpu else gpus
    unit = "TPU chips" if tpu else "GPUs"
    wait = catalog.loading.provisioning[kind].seconds / 60
    return (
        f"drains up to {nodes} {machine} node(s) ({nodes * per_node} {unit}); that capacity is away for about "
        f"{wait:.0f} min of provisioning ({kind}) plus the workloads' start"
    )


def changes(a: Plan, b: Plan, catalog: Catalog | None = None) -> list[Change]:
    """Every resource whose action is not 'same', in key order."""
    catalog = catalog or load_catalog()
    out = []
    for key in sorted(a.resources.keys() | b.resources.keys()):
        ra, rb = a.resources.get(key), b.resources.get(key)
        type_ = (rb or ra or {})["type"]
        paths = _changed_paths(a, b, key) if ra and rb else []
        change = classify(key, type_, ra, rb, paths)
        options = _option_paths(a, b, key) if ra and rb else []
        if change is None and options:
            change = Change(key, type_, "update")
        if change is None:
            continue
        change.paths += options
        if type_ == NODE_POOL and change.action in ("replace", "delete") and ra:
            cost = pool_cost(ra, catalog)
            if cost:
                change.notes.append(cost)
        out.append(change)
    return out


def _show(value: Any) -> str:
    return json.dumps(value, sort_keys=True)


def _rows(change: Change) -> list[list[str]]:
    rows = []
    for path, x, y in change.paths:
        mark = " (replaces)" if path in change.forcing else ""
        if isinstance(x, list) and isinstance(y, list) and all(isinstance(v, str) for v in (*x, *y)):
            removed, added = [v for v in x if v not in y], [v for v in y if v not in x]
            rows.append([path + mark, "\n".join(f"- {v}" for v in removed) or "(order)", "\n".join(f"+ {v}" for v in added)])
        else:
            rows.append([path + mark, _show(x), _show(y)])
    return rows


def labels(a: Plan, b: Plan) -> tuple[str, str]:
    """Stack names, or for two plans of one stack the folders they came from."""
    if a.summary["stack"] != b.summary["stack"]:
        return a.summary["stack"], b.summary["stack"]
    return f"{a.summary['stack']} ({a.folder})", f"{b.summary['stack']} ({b.folder})"


@dataclass(frozen=True)
class Comparison:
    report: str
    """Markdown."""
    counts: str
    """'N to create, N to update, N to replace, N to delete'."""
    problems: list[str]
    """For two plans of one stack: what `pulumi up` would refuse or break."""


def compare(a_folder: Path, b_folder: Path) -> Comparison:
    """The Markdown report, its action counts and, for two plans of one stack, the problems `pulumi up` would hit."""
    a, b = Plan.load(a_folder), Plan.load(b_folder)
    name_a, name_b = labels(a, b)
    same_stack = a.summary["stack"] == b.summary["stack"]
    found = changes(a, b)
    problems = [p for c in found for p in c.problems] if same_stack else []
    lines = [f"# Diff: {name_a} → {name_b}", ""]
    if not same_stack:
        lines += [
            "Two environments: each resource's action is what promoting one's configuration to the other would do. "
            "The names of each environment (project, prefix, environment, stack) are compared as `<project>`, "
            "`<prefix>`, `<env>` and `<stack>`.",
            "",
        ]
    ca, cb = a.summary["cost"], b.summary["cost"]
    lines += [
        tabulate(
            [
                ["resources", a.summary["resources"]["total"], b.summary["resources"]["total"]],
                [
                    "$/h (min..max)",
                    f"{ca['hourly_min']:.2f}..{ca['hourly_max']:.2f}",
                    f"{cb['hourly_min']:.2f}..{cb['hourly_max']:.2f}",
                ],
                ["$/month max", f"{ca['monthly_max']:,.2f}", f"{cb['monthly_max']:,.2f}"],
                [
                    "workloads",
                    ", ".join(w["name"] for w in a.summary["workloads"]) or "-",
                    ", ".join(w["name"] for w in b.summary["workloads"]) or "-",
                ],
                [
                    "accelerator pools",
                    ", ".join(p["pool"] for p in a.summary["accelerators"]) or "-",
                    ", ".join(p["pool"] for p in b.summary["accelerators"]) or "-",
                ],
            ],
            headers=["", name_a, name_b],
            tablefmt="github",
        ),
        "",
    ]
    counts = ", ".join(f"{sum(1 for c in found if c.action == a)} to {a}" for a in ("create", "update", "replace", "delete"))
    lines += [counts, ""]
    if problems:
        lines += ["## Errors: `pulumi up` would fail", ""] + [f"- {p}" for p in problems] + [""]
    for action in ("replace", "delete", "create", "update"):
        group = [c for c in found if c.action == action]
        if not group:
            continue
        lines += [f"## {action.title()}", ""]
        if action in ("create", "delete"):
            lines += [f"- `{c.key}`" + "".join(f"; cost: {note}" for note in c.notes) for c in group] + [""]
            continue
        for c in group:
            lines.append(f"### `{c.key}`")
            if c.forcing:
                lines.append("")
                lines += [f"- replaced because `{path}` changed (`{rule}`)" for path, rule in c.forcing.items()]
            lines += [f"- cost: {note}" for note in c.notes]
            rows = _rows(c)
            if rows:
                lines += ["", tabulate(rows[:MAX_CHANGES_PER_RESOURCE], headers=["path", name_a, name_b], tablefmt="github")]
                if len(rows) > MAX_CHANGES_PER_RESOURCE:
                    lines.append(f"\n… and {len(rows) - MAX_CHANGES_PER_RESOURCE} more")
            lines.append("")
    if not found:
        lines.append("No resource differences.")
    return Comparison("\n".join(lines).rstrip() + "\n", counts, problems)


def changed_layers(base: Path, head: Path) -> list[str]:
    """The stacks (platform, serving) whose own plan differs between two plans of one environment: what a pull request
    must preview. A base plan from before the split, or missing, counts as a change of both."""
    changed = []
    for layer in ("platform", "serving"):
        old, new = base / layer / "resources.json", head / layer / "resources.json"
        if not old.is_file() or not new.is_file() or json.loads(old.read_text()) != json.loads(new.read_text()):
            changed.append(layer)
    return changed
