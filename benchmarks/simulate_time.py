"""Time of a 24 h simulation for every autoscaled workload of prod (trace generation and simulation apart).

Run: make bench. Goal (issue #10): seconds, not minutes, per workload.
"""

from __future__ import annotations

import time
from pathlib import Path

from tabulate import tabulate

from infra.catalog import load as load_catalog
from infra.simulate.capacity import replica_capacity
from infra.simulate.run import autoscaled, run_case, trace_for
from infra.tooling.plan import StackFile, run

ROOT = Path(__file__).resolve().parent.parent
HOURS = 24


def main() -> None:
    capture = run(StackFile.read(ROOT / "stacks" / "Pulumi.prod.yaml"))
    cfg, catalog = capture.config, load_catalog()
    rows = []
    for workload, hpa in autoscaled(cfg, [r.as_json() for r in capture.resources]):
        started = time.perf_counter()
        trace = trace_for("diurnal", replica_capacity(catalog, workload), hpa, HOURS)
        generated = time.perf_counter()
        result = run_case(cfg, catalog, workload, hpa, trace, HOURS)
        done = time.perf_counter()
        rows.append(
            [workload.name, len(trace), round(generated - started, 2), round(done - generated, 2), f"{result.slo_share:.1%}"]
        )
    print(tabulate(rows, headers=["workload", "requests", "trace s", "simulation s", "within SLO"], tablefmt="github"))
    print(f"\n{HOURS} h diurnal trace per workload, 1 s steps; Python {'.'.join(map(str, __import__('sys').version_info[:3]))}")


if __name__ == "__main__":
    main()
