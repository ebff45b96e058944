"""What a reviewer reads: inventory, memory fit, cost and a diagram, derived from one plan capture."""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import asdict, dataclass
from typing import Any

from tabulate import tabulate

from components.cluster import SYSTEM_POOL_ZONES
from infra import sizing
from infra.catalog import Catalog
from infra.catalog import load as load_catalog
from infra.config import StackConfig, Workload
from infra.names import stack_prefix
from infra.serving import models as model_serving
from infra.serving.common import hpa_target
from infra.tooling.operations import operations_markdown, operations_summary


@dataclass(frozen=True)
class CostLine:
    item: str
    machine: str
    provisioning: str
    min_units: int
    max_units: int
    unit: str
    unit_price: float | None
    source: str | None
    as_of: str | None

    @property
    def hourly_min(self) -> float | None:
        return None if self.unit_price is None else round(self.unit_price * self.min_units, 4)

    @property
    def hourly_max(self) -> float | None:
        return None if self.unit_price is None else round(self.unit_price * self.max_units, 4)


def cost_lines(cfg: StackConfig, catalog: Catalog) -> list[CostLine]:
    """Every billable accelerator or VM group, priced from the catalog at its floor and ceiling."""
    lines = []
    sys_pool = cfg.cluster.system_pool
    row = catalog.machine_price(sys_pool.machine_type, cfg.region)
    lines.append(
        CostLine(
            "system pool",
            sys_pool.machine_type,
            "on_demand",
            sys_pool.min_nodes_per_zone * SYSTEM_POOL_ZONES,
            sys_pool.max_nodes_per_zone * SYSTEM_POOL_ZONES,
            "VM",
            row.on_demand if row else None,
            row.source if row else None,
            row.as_of if row else None,
        )
    )
    for name, tpu in cfg.tpu_pools.items():
        per_pool_min, per_pool_max = tpu.config.slices_per_pool
        provisioning = tpu.config.provisioning
        row = catalog.tpu_chip_price(tpu.slice.generation.name, cfg.region)
        chips = tpu.slice.chips * tpu.config.slices
        lines.append(
            CostLine(
                f"tpu_pools.{name}",
                tpu.slice.shape,
                provisioning,
                chips * per_pool_min,
                chips * per_pool_max,
                "chip",
                row.hourly(provisioning) if row else None,
                row.source if row else None,
                row.as_of if row else None,
            )
        )
    for name, gpu in cfg.gpu_pools.items():
        c = gpu.config
        provisioning = "spot" if c.provisioning == "spot" else "on_demand"
        row = catalog.machine_price(c.machine_type, cfg.region)
        zones = len(gpu.zones)
        lines.append(
            CostLine(
                f"gpu_pools.{name}",
                c.machine_type,
                c.provisioning,
                c.min_nodes_per_zone * zones,
                c.max_nodes_per_zone * zones,
                "VM",
                row.hourly(provisioning) if row else None,
                row.source if row else None,
                row.as_of if row else None,
            )
        )
    return lines


def workload_summary(w: Workload, catalog: Catalog) -> dict[str, Any]:
    fit = w.fit
    derived: dict[str, Any]
    if w.config.engine == "jetstream-pathways":
        slice_ = w.tpu_pools[0].slice
        slices = len(w.tpu_pools)
        flags = sizing.pathways_flags(slice_, slices)
        mesh = sizing.maxtext_parallelism(w.model, slice_.chips)
        derived = {
            "lws_size": sizing.lws_group_size(slice_, slices),
            "google_com_tpu_per_worker": slice_.chips_per_vm,
            "pathways_instance_type": flags.instance_type,
            "pathways_instance_count": flags.instance_count,
            "ici_parallelism": asdict(mesh),
            "nodes": slice_.vms * slices,
        }
        start = sizing.jetstream_startup(catalog.loading, w.model, w.config.weight_dtype, slice_)
    else:
        derived = (
            {"gpus": w.gpus, **asdict(model_serving.layout(w))}
            if w.gpu_pool
            else {"google_com_tpu": w.tpu_pools[0].slice.chips, **asdict(model_serving.layout(w))}
        )
        start = model_serving.startup(catalog, w)
    startup = {
        "path": start.path,
        "load_s": round(start.load_s),
        "warmup_s": round(start.warmup_s),
        "predicted_s": round(start.predicted_s),
        "probe_budget_s": start.budget_s,
    }
    return {
        "name": w.name,
        "engine": w.config.engine,
        "model": w.config.model,
        "shape": fit.shape,
        "sequences": fit.sequences,
        "required_gib": round(fit.required_gib, 1),
        "usable_gib": round(fit.usable_gib, 1),
        "provisioned_gib": round(fit.provisioned_bytes / sizing.GIB, 1),
        "ratio": round(fit.ratio, 2),
        "fits": fit.fits,
        "justification": w.config.justification,
        "autoscaling": {
            "min_replicas": w.config.autoscaling.min_replicas,
            "max_replicas": w.config.autoscaling.max_replicas,
            "metric": w.metric,
            "target": hpa_target(catalog, w),
        }
        if w.config.autoscaling
        else None,
        "derived": derived,
        "startup": startup,
    }


def autoscaling_summary(cfg: StackConfig, catalog: Catalog) -> list[dict[str, Any]]:
    """How fast each HPA can add capacity: a load step is seen after the metric delay and the next sync, and a new
    replica serves after its start time, plus node provisioning once the warm nodes are used (`simulate` runs traces)."""
    from infra.simulate.run import timing

    rows = []
    for w in cfg.workloads.values():
        auto = w.config.autoscaling
        if auto is None:
            continue
        t = timing(cfg, catalog, w)
        seen = t.metric_delay_s + HPA_SYNC_S
        rows.append(
            {
                "workload": w.name,
                "metric": w.metric,
                "target": hpa_target(catalog, w),
                "replicas": f"{auto.min_replicas}-{auto.max_replicas}",
                "warm_replicas": t.warm_replicas,
                "first_replica_s": round(seen + t.start_s),
                "cold_replica_s": round(seen + t.provision_s + t.start_s),
            }
        )
    return rows


HPA_SYNC_S = 15
"""The HPA controller's sync period (kube-controller-manager default)."""


def accelerator_inventory(cfg: StackConfig) -> list[dict[str, Any]]:
    rows = []
    for name, t in cfg.tpu_pools.items():
        rows.append(
            {
                "pool": name,
                "kind": "tpu",
                "accelerator": t.slice.generation.gke_accelerator,
                "shape": t.slice.topology,
                "machine_type": t.slice.machine_type,
                "node_pools": t.config.slices,
                "nodes_per_pool": t.slice.vms * t.config.slices_per_pool[1],
                "zones": list(t.zones),
                "provisioning": t.config.provisioning,
                "chips_max": t.slice.chips * t.config.max_slices,
            }
        )
    for name, g in cfg.gpu_pools.items():
        rows.append(
            {
                "pool": name,
                "kind": "gpu",
                "accelerator": g.gpu.gke_accelerator,
                "shape": f"{g.gpus_per_vm}x {g.gpu.name}",
                "machine_type": g.config.machine_type,
                "node_pools": 1,
                "nodes_per_pool": g.config.max_nodes_per_zone * len(g.zones),
                "zones": list(g.zones),
                "provisioning": g.config.provisioning,
                "gpus_max": g.config.max_nodes_per_zone * len(g.zones) * g.gpus_per_vm,
            }
        )
    return rows


def _node_id(kind: str, name: str) -> str:
    return f"{kind}_{re.sub(r'[^A-Za-z0-9]', '_', name)}"


def mermaid(cfg: StackConfig) -> str:
    """cluster -> pools -> workloads, as a Mermaid flowchart GitHub renders."""
    lines = ["flowchart LR", f'  cluster["GKE {stack_prefix(cfg)}<br/>{cfg.region}"]']
    for name, t in cfg.tpu_pools.items():
        lines.append(
            f'  {_node_id("pool", name)}["{name}<br/>{t.slice.shape} x{t.config.slices}<br/>{t.slice.vms}x {t.slice.machine_type}"]'
        )
        lines.append(f"  cluster --> {_node_id('pool', name)}")
    for name, g in cfg.gpu_pools.items():
        lines.append(f'  {_node_id("pool", name)}["{name}<br/>{g.config.machine_type}<br/>{", ".join(g.zones)}"]')
        lines.append(f"  cluster --> {_node_id('pool', name)}")
    for name, w in cfg.workloads.items():
        lines.append(f'  {_node_id("wl", name)}(["{name}<br/>{w.config.engine} · {w.config.model}"])')
        pools = [p.name for p in w.tpu_pools] or ([w.gpu_pool.name] if w.gpu_pool else [])
        for pool in dict.fromkeys(pools):
            lines.append(f"  {_node_id('pool', pool)} --> {_node_id('wl', name)}")
    return "\n".join(lines)


def summarize(cfg: StackConfig, resources: list[dict[str, Any]], policy: dict[str, Any] | None = None) -> dict[str, Any]:
    catalog = load_catalog()
    lines = cost_lines(cfg, catalog)
    priced = [line for line in lines if line.unit_price is not None]
    hourly_min = round(sum(line.hourly_min or 0 for line in priced), 2)
    hourly_max = round(sum(line.hourly_max or 0 for line in priced), 2)
    budget = cfg.budget.monthly_usd
    monthly_max = round(hourly_max * sizing.HOURS_PER_MONTH, 2)
    return {
        "stack": cfg.stack,
        "environment": cfg.environment,
        "project": cfg.project,
        "region": cfg.region,
        "prefix": stack_prefix(cfg),
        "catalog_as_of": catalog.as_of,
        "resources": {"total": len(resources), "by_type": dict(sorted(Counter(r["type"] for r in resources).items()))},
        "accelerators": accelerator_inventory(cfg),
        "workloads": [workload_summary(w, catalog) for w in cfg.workloads.values()],
        "autoscaling": autoscaling_summary(cfg, catalog),
        "cost": {
            "currency": "USD",
            "hours_per_month": sizing.HOURS_PER_MONTH,
            "lines": [{**asdict(line), "hourly_min": line.hourly_min, "hourly_max": line.hourly_max} for line in lines],
            "unpriced": [line.item for line in lines if line.unit_price is None],
            "hourly_min": hourly_min,
            "hourly_max": hourly_max,
            "monthly_min": round(hourly_min * sizing.HOURS_PER_MONTH, 2),
            "monthly_max": monthly_max,
            "budget_monthly": budget,
            "within_budget": None if budget is None else monthly_max <= budget,
        },
        "policies": policy or {"ran": False, "violations": []},
        "advisories": list(cfg.advisories),
        "operations": operations_summary(cfg, catalog, resources),
    }


def _md(rows: list[list[Any]], headers: list[str]) -> str:
    return tabulate(rows, headers=headers, tablefmt="github")


def workload_rows(summary: dict[str, Any]) -> list[list[Any]]:
    return [
        [w["name"], w["engine"], w["model"], w["shape"], w["required_gib"], w["usable_gib"], w["ratio"], _start(w["startup"])]
        for w in summary["workloads"]
    ]


def _start(startup: dict[str, Any] | None) -> str:
    """Predicted start, and the startup-probe budget it must stay within."""
    if not startup:
        return ""
    return f"{startup['predicted_s'] / 60:.1f} min (probe {startup['probe_budget_s'] / 60:.0f} min)"


WORKLOAD_HEADERS = ["workload", "engine", "model", "shape", "required GiB", "usable GiB", "ratio", "start"]


def markdown(summary: dict[str, Any], diagram: str) -> str:
    cost = summary["cost"]
    parts = [
        f"# Plan: {summary['stack']} ({summary['environment']})",
        "",
        f"Project `{summary['project']}`, region `{summary['region']}`; catalog as of {summary['catalog_as_of']}. "
        f"{summary['resources']['total']} resources.",
        "",
        "## Topology",
        "",
        "```mermaid",
        diagram,
        "```",
        "",
        "## Accelerators",
        "",
        _md(
            [
                [
                    a["pool"],
                    a["kind"],
                    a["accelerator"],
                    a["shape"],
                    a["machine_type"],
                    a["node_pools"],
                    a["nodes_per_pool"],
                    ", ".join(a["zones"]),
                    a["provisioning"],
                ]
                for a in summary["accelerators"]
            ],
            ["pool", "kind", "accelerator", "shape", "machine", "node pools", "max nodes/pool", "zones", "capacity"],
        ),
        "",
        "## Memory fit",
        "",
        _md(workload_rows(summary), WORKLOAD_HEADERS),
        "",
        *(
            [f"Over-provisioning advisories (ratio above {sizing.OVERPROVISION_RATIO:g} without `justification`):", ""]
            + [f"- {a}" for a in summary["advisories"]]
            + [""]
            if summary.get("advisories")
            else []
        ),
        *autoscaling_markdown(summary.get("autoscaling", [])),
        "## Cost estimate (USD)",
        "",
        _md(
            [
                [
                    c["item"],
                    c["machine"],
                    c["provisioning"],
                    c["min_units"],
                    c["max_units"],
                    c["unit"],
                    c["unit_price"],
                    c["hourly_min"],
                    c["hourly_max"],
                    c["as_of"],
                ]
                for c in cost["lines"]
            ],
            ["item", "machine", "capacity", "min units", "max units", "unit", "$/unit-h", "$/h min", "$/h max", "price as of"],
        ),
        "",
        f"Hourly {cost['hourly_min']:.2f} to {cost['hourly_max']:.2f}; monthly ({cost['hours_per_month']} h) "
        f"{cost['monthly_min']:.2f} to {cost['monthly_max']:.2f}"
        + (
            f"; budget {cost['budget_monthly']:.2f} ({'within' if cost['within_budget'] else 'OVER'})."
            if cost["budget_monthly"]
            else "."
        ),
    ]
    if cost["unpriced"]:
        parts += ["", f"No price row for: {', '.join(cost['unpriced'])}."]
    parts += ["", "## Resources", "", _md(sorted(summary["resources"]["by_type"].items()), ["type", "count"]), ""]
    parts += operations_markdown(summary.get("operations"))
    parts += secrets_markdown(summary.get("secrets"))
    parts += policies_markdown(summary["policies"])
    return "\n".join(parts)


def secrets_markdown(secrets: dict[str, Any] | None) -> list[str]:
    """The report's Secrets section: the stack file's secrets provider, shared by the platform and serving stacks."""
    if secrets is None:
        return []
    provider = f"`{secrets['provider']}`" if secrets["provider"] else "none (a passphrase on a gs:// backend)"
    key = "present" if secrets["encryptedkey"] else "not yet (Pulumi writes it on `pulumi stack init`)"
    lines = ["## Secrets", "", f"Secrets provider {provider}; `encryptedkey` {key}."]
    if secrets["problem"]:
        lines += ["", f"**{secrets['enforcement']}**: {secrets['problem']}"]
    return [*lines, ""]


def autoscaling_markdown(rows: list[dict[str, Any]]) -> list[str]:
    if not rows:
        return []
    table = _md(
        [
            [
                r["workload"],
                r["metric"],
                r["target"],
                r["replicas"],
                r["warm_replicas"],
                r["first_replica_s"],
                r["cold_replica_s"],
            ]
            for r in rows
        ],
        ["workload", "metric", "target", "replicas", "warm", "new replica serves after (s, warm node)", "(s, new node)"],
    )
    return [
        "## Autoscaling",
        "",
        "Until a new replica serves, a burst is absorbed only by the running replicas' headroom. "
        "`gke-inference simulate STACK` runs these HPAs on traffic traces (TTFT, SLO share, replica-hours, cost) and recommends a setting: the cheapest meeting the TTFT objective, or the closest with what blocks it (pool, start time, metric).",
        "",
        table,
        "",
    ]


def policies_markdown(policies: dict[str, Any]) -> list[str]:
    """The report's Policies section: every violation of the CrossGuard pack, mandatory first."""
    if not policies["ran"]:
        return []
    found = sorted(policies["violations"], key=lambda v: (v["enforcement"] != "mandatory", v["policy"], v["resource"]))
    lines = [
        "## Policies",
        "",
        f"Pack run offline with `{policies['config'] or 'declared levels'}`: {len(found)} violation(s), {policies['mandatory']} mandatory.",
        "",
    ]
    if found:
        rows = [[v["enforcement"], v["policy"], v["resource"], v["message"]] for v in found]
        lines += [_md(rows, ["enforcement", "policy", "resource", "message"]), ""]
    return lines


def terminal(summary: dict[str, Any]) -> str:
    cost = summary["cost"]
    head = (
        f"{summary['stack']}: {summary['resources']['total']} resources, "
        f"${cost['hourly_min']:.2f}-{cost['hourly_max']:.2f}/h, ${cost['monthly_max']:,.0f}/month max"
    )
    text = (
        head
        if not summary["workloads"]
        else head + "\n" + tabulate(workload_rows(summary), headers=WORKLOAD_HEADERS, tablefmt="simple")
    )
    advisories = [f"\n  [advisory]  config\n      {a}" for a in summary.get("advisories", [])]
    secrets = summary.get("secrets") or {}
    provider = [f"\n  secrets provider: {secrets['provider'] or 'none (passphrase)'}"] if secrets else []
    if secrets.get("problem"):
        provider.append(f"\n  [{secrets['enforcement']}]  secretsprovider\n      {secrets['problem']}")
    return text + "".join(provider) + "".join(advisories) + "".join(policy_lines(summary["policies"]))


def policy_lines(policies: dict[str, Any]) -> list[str]:
    """Violations as the Pulumi CLI prints them: level, policy, (type: name), then the message."""
    return [f"\n  [{v['enforcement']}]  {v['policy']}  ({v['resource']})\n      {v['message']}" for v in policies["violations"]]
