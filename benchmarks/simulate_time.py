"""Time of `gke-inference simulate prod` as a user runs it, then of each of its phases in this process.

Run: make bench. Goal (issue #19): the whole command in at most 20 s on 2 cores, 24 h x 4 traces per autoscaled
workload plus the settings search on 4 h traces. Other processes share the cores: the CPU time (user + system, the
workers' included) tells the work apart from the wait; measure when the machine is quiet.
"""

from __future__ import annotations

import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from tabulate import tabulate

from infra.catalog import load as load_catalog
from infra.simulate.capacity import replica_capacity
from infra.simulate.recommend import recommendation
from infra.simulate.run import TRACES, autoscaled, run_case, trace_for
from infra.tooling.plan import StackFile, run

ROOT = Path(__file__).resolve().parent.parent
HOURS, RECOMMEND_HOURS = 24.0, 4.0
GOAL_S = 20.0


def end_to_end() -> tuple[float, float]:
    """Wall and CPU seconds of the command, workers included."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as out:
        subprocess.run(
            [str(Path(sys.executable).parent / "gke-inference"), "simulate", "prod", "--out", out],
            check=True,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def main() -> None:
    wall, cpu = end_to_end()
    print(f"`simulate prod`: {wall:.1f} s wall, {cpu:.1f} s CPU (goal: {GOAL_S:g} s wall on 2 cores)\n")
    started = time.perf_counter()
    capture = run(StackFile.read(ROOT / "stacks" / "Pulumi.prod.yaml"))
    plan_s = time.perf_counter() - started
    cfg, catalog = capture.config, load_catalog()
    rows = []
    for workload, hpa in autoscaled(cfg, [r.as_json() for r in capture.resources]):
        capacity = replica_capacity(catalog, workload)
        started = time.perf_counter()
        traces = [trace_for(name, capacity, hpa, HOURS) for name in TRACES]
        drawn = time.perf_counter()
        for trace in traces:
            run_case(cfg, catalog, workload, hpa, trace, HOURS)
        simulated = time.perf_counter()
        recommendation(cfg, catalog, workload, hpa, RECOMMEND_HOURS)
        searched = time.perf_counter()
        rows.append(
            [
                workload.name,
                sum(len(t) for t in traces),
                round(drawn - started, 2),
                round(simulated - drawn, 2),
                round(searched - simulated, 2),
            ]
        )
    print(f"In this process, one after the other (the plan: {plan_s:.1f} s):\n")
    headers = ["workload", "requests (4 traces)", "draw traces s", f"simulate {HOURS:g} h s", f"search {RECOMMEND_HOURS:g} h s"]
    print(tabulate(rows, headers=headers, tablefmt="github"))
    print(f"\nPython {'.'.join(map(str, sys.version_info[:3]))}")


if __name__ == "__main__":
    main()
