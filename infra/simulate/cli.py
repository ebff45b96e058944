"""`gke-inference simulate`: run the cases with a progress bar, print the table, write simulation.md."""

from __future__ import annotations

from pathlib import Path

import click

from infra.catalog import load as load_catalog
from infra.simulate import report
from infra.simulate.capacity import replica_capacity
from infra.simulate.recommend import lines as recommendation_lines
from infra.simulate.recommend import recommendation
from infra.simulate.run import SLO_TARGET, TRACES, run_case, trace_for
from infra.simulate.traces import Trace, load_csv
from infra.tooling.plan import Capture


def simulate(capture: Capture, trace_file: Path | None, only: str | None, hours: float, recommend_hours: float, out: Path) -> int:
    cfg, catalog = capture.config, load_catalog()
    resources = [r.as_json() for r in capture.resources]
    from infra.simulate.run import autoscaled

    cases = [(w, hpa) for w, hpa in autoscaled(cfg, resources) if only in (None, w.name)]
    if not cases:
        click.echo(f"{capture.stack}: no autoscaled workload{f' named {only}' if only else ''}")
        return 0 if only is None else 2
    user_trace = Trace.of(load_csv(trace_file)) if trace_file else None
    names = [trace_file.stem] if trace_file else list(TRACES)
    rows, charts = [], []
    with click.progressbar(length=len(cases) * len(names), label=f"{capture.stack}: simulating") as bar:
        for workload, hpa in cases:
            capacity = replica_capacity(catalog, workload)
            for name in names:
                trace = user_trace if user_trace is not None else trace_for(name, capacity, hpa, hours)
                span = hours if user_trace is None else max(1.0, (max(trace.arrival_s, default=0) + 600) / 3600)
                result = run_case(cfg, catalog, workload, hpa, trace, span)
                rows.append(report.row(workload.name, name, result))
                charts.append(report.chart(f"{workload.name}, {name}", result))
                bar.update(1)
    recommendations = []
    if recommend_hours > 0:
        with click.progressbar(cases, label=f"{capture.stack}: searching settings") as items:
            for workload, hpa in items:
                recommendations.append((workload, recommendation(cfg, catalog, workload, hpa, recommend_hours)))
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
