"""The plan report's *Operations* section: the dashboard, alert policies and load tests the serving stack renders."""

from __future__ import annotations

import json
from typing import Any

from tabulate import tabulate

from infra.catalog import Catalog
from infra.config import StackConfig
from infra.serving import load_tests

DASHBOARD = "gcp:monitoring/dashboard:Dashboard"
ALERT = "gcp:monitoring/alertPolicy:AlertPolicy"
COMPARISON = {"COMPARISON_GT": ">", "COMPARISON_GE": ">="}


def operations_summary(cfg: StackConfig, catalog: Catalog, resources: list[dict[str, Any]]) -> dict[str, Any]:
    """What was rendered (read from the resources, not re-derived), with the load tests' derived rates."""
    dashboards = []
    for r in resources:
        if r["type"] == DASHBOARD:
            body = json.loads(r["inputs"]["dashboardJson"])
            charts = [t["widget"]["title"] for t in body["mosaicLayout"]["tiles"] if "xyChart" in t["widget"]]
            dashboards.append({"name": body["displayName"], "charts": len(charts)})
    alerts = [
        {
            "name": r["inputs"]["displayName"],
            "severity": r["inputs"]["severity"],
            "conditions": [
                f"{c['displayName']}: {COMPARISON[c['conditionThreshold']['comparison']]} "
                f"{c['conditionThreshold']['thresholdValue']:g} for {c['conditionThreshold']['duration']}"
                for c in r["inputs"]["conditions"]
            ],
            "channels": len(r["inputs"].get("notificationChannels", [])),
        }
        for r in resources
        if r["type"] == ALERT
    ]
    plans = [load_tests.load_plan(cfg.sections.monitoring.load_test, catalog, w) for w in load_tests.tested(cfg).values()]
    return {
        "dashboards": dashboards,
        "alerts": alerts,
        "load_tests": [
            {
                "workload": p.workload,
                "route": p.route,
                "rates": list(p.rates),
                "design_rps": p.design_rps,
                "capacity_rps": p.capacity_rps,
                "overridden": p.overridden,
            }
            for p in plans
        ],
        "no_load_test": load_tests.skipped(cfg),
    }


def operations_markdown(ops: dict[str, Any] | None) -> list[str]:
    if not ops or not (ops["dashboards"] or ops["alerts"] or ops["load_tests"] or ops["no_load_test"]):
        return []
    lines = ["## Operations", ""]
    lines += [f"Dashboard `{d['name']}`: {d['charts']} charts." for d in ops["dashboards"]] + [""]
    if ops["alerts"]:
        rows = [[a["name"], a["severity"], "; ".join(a["conditions"]), a["channels"]] for a in ops["alerts"]]
        lines += [tabulate(rows, headers=["alert", "severity", "fires when", "channels"], tablefmt="github"), ""]
    if ops["load_tests"]:
        rows = [
            [
                t["workload"],
                t["route"],
                ", ".join(f"{r:g}" for r in t["rates"]),
                "peak_rps" if t["overridden"] else t["design_rps"],
                t["capacity_rps"],
            ]
            for t in ops["load_tests"]
        ]
        lines += [
            "Load tests (suspended CronJobs; run one with `kubectl create job -n NS --from=cronjob/WORKLOAD-load-test NAME`), "
            "reports in the model bucket under `benchmarks/WORKLOAD/TIMESTAMP/`:",
            "",
            tabulate(rows, headers=["workload", "route", "rates (req/s)", "design load", "pools serve"], tablefmt="github"),
            "",
        ]
    lines += [f"No load test for `{n}`: {why}." for n, why in ops["no_load_test"].items()]
    return [*lines, ""]
