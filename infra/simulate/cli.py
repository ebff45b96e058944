"""`gke-inference simulate`: run the cases with a progress bar, print the table, write simulation.md."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING

import click

from infra.catalog import CALIBRATED
from infra.catalog import load as load_catalog
from infra.simulate import report
from infra.simulate.parallel import Task, Workers, run_all
from infra.simulate.recommend import lines as recommendation_lines
from infra.simulate.run import SLO_TARGET, TRACES, autoscaled
from infra.simulate.traces import Trace, load_csv
from infra.tooling.plan import Capture

if TYPE_CHECKING:
    from click._termui_impl import ProgressBar


class _Bars:
    """One progress bar per phase of a workload, on stderr (click prints only the label when it is not a terminal)."""

    def __init__(self, label: str) -> None:
        self.label = label
        self.bar: ProgressBar[int] | None = None
        self.left = 0

    def phase(self, name: str, steps: int) -> None:
        self.done()
        self.left = max(1, steps)
        self.bar = click.progressbar(length=self.left, label=f"{self.label}: {name}", file=sys.stderr)
        self.bar.__enter__()

    def step(self) -> None:
        if self.bar and self.left > 1:
            self.bar.update(1)
            self.left -= 1

    def done(self) -> None:
        """Close the phase's bar, full: a bisection may stop before its bound."""
        if self.bar:
            self.bar.update(self.left)
            self.bar.__exit__(None, None, None)
            self.bar = None


def simulate(
    capture: Capture,
    trace_file: Path | None,
    only: str | None,
    hours: float,
    recommend_hours: float,
    out: Path,
    on: Workers | None = None,
) -> int:
    """`on`: the workers to spread the runs over (parallel.workers), or None to run them here."""
    cfg, catalog = capture.config, load_catalog()
    resources = [r.as_json() for r in capture.resources]
    cases = [(w, hpa) for w, hpa in autoscaled(cfg, resources) if only in (None, w.name)]
    if not cases:
        click.echo(f"{capture.stack}: no autoscaled workload{f' named {only}' if only else ''}")
        return 0 if only is None else 2
    recorded = Trace.of(load_csv(trace_file)) if trace_file else None
    names = (trace_file.stem,) if trace_file else TRACES
    tasks = [Task(cfg, catalog, w.name, hpa, names, recorded, hours, recommend_hours) for w, hpa in cases]
    outcomes = run_all(tasks, lambda workload: _Bars(f"{capture.stack} {workload}"), on)
    rows, charts = [], []
    for (workload, _), outcome in zip(cases, outcomes, strict=True):
        for name, result in outcome.results:
            rows.append(report.row(workload.name, name, result))
            charts.append(report.chart(f"{workload.name}, {name}", result))
    recommendations = [(w, o.recommendation) for (w, _), o in zip(cases, outcomes, strict=True) if o.recommendation]
    click.echo(report.table(rows))
    lines = [f"# Autoscaling what-if: {capture.stack}", "", report.table(rows, "github"), ""]
    if recommendations:
        lines += [
            "## Recommended settings",
            "",
            f"The cheapest setting with at least {SLO_TARGET:.0%} of requests within the objective on the diurnal and burst "
            f"traces ({recommend_hours:g} h), or the closest one and what blocks the objective:",
            "",
        ]
        for workload, rec in recommendations:
            head, *rest = recommendation_lines(rec, workload)
            lines.append(f"- **{rec.workload}**: {head}")
            lines += [f"  - {line}" for line in rest]
            click.echo(f"  {rec.workload}: {head}")
            for line in rest:
                click.echo(f"    {line}")
        lines.append("")
    lines += ["## Over time", "", *("\n".join([c, ""]) for c in charts)]
    target = out / capture.stack
    target.mkdir(parents=True, exist_ok=True)
    (target / "simulation.md").write_text("\n".join(lines))
    click.echo(f"  -> {target / 'simulation.md'}")
    return 0


def calibrate(capture: Capture, results: Path, only: str | None) -> int:
    """`simulate --calibrate`: fit the load test in `results` and write the factors to the catalog's calibrated.yaml;
    2 on input it cannot use, writing nothing."""
    from infra.simulate import calibrate as cal

    target = CALIBRATED
    try:
        runs = cal.read_runs(results)
        workload = cal.workload_for(dict(capture.config.workloads), runs, only)
        entry = cal.calibrate(load_catalog(), workload, runs, target)
    except cal.CalibrationError as error:
        click.echo(f"{capture.stack}: cannot calibrate: {error}", err=True)
        return 2
    factors = ", ".join(f"{k} {v}" for k, v in entry.items() if k not in ("source", "date"))
    click.echo(f"{workload.config.engine} on {cal.accelerator_of(workload)}: {factors} -> {target}")
    return 0
