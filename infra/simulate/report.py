"""Simulation results as a compact table and, per workload and trace, a Mermaid chart GitHub renders."""

from __future__ import annotations

from tabulate import tabulate

from infra.simulate.engine import Result

HEADERS = ["workload", "trace", "TTFT p50 s", "TTFT p95 s", "within SLO", "peak queue", "replica-h", "cost $", "scale events"]
CHART_POINTS = 48


def row(workload: str, trace: str, r: Result) -> list[object]:
    return [
        workload,
        trace,
        round(r.ttft_p50_s, 2),
        round(r.ttft_p95_s, 2),
        f"{r.slo_share:.1%}",
        r.peak_queue,
        round(r.replica_hours, 1),
        round(r.cost_usd, 2),
        r.scale_events,
    ]


def table(rows: list[list[object]], fmt: str = "simple") -> str:
    return tabulate(rows, headers=HEADERS, tablefmt=fmt)


def chart(title: str, r: Result) -> str:
    """Replicas (ready and in total), the queue and the arrivals per minute over time, as a Mermaid xychart."""
    series = r.series
    stride = max(1, len(series) // CHART_POINTS)
    points = series[::stride]
    hours = [f"{p.t_s / 3600:.1f}" for p in points]

    def values(key: str) -> str:
        return "[" + ", ".join(str(getattr(p, key)) for p in points) + "]"

    peak = max([1, *(p.queue for p in points), *(p.arrivals for p in points), *(p.total for p in points)])
    return "\n".join(
        [
            "```mermaid",
            "xychart-beta",
            f'  title "{title}: arrivals/min (bars), queue, replicas in total and ready (lines)"',
            f'  x-axis "hour" [{", ".join(hours)}]',
            f'  y-axis "count" 0 --> {peak}',
            f"  bar {values('arrivals')}",
            f"  line {values('queue')}",
            f"  line {values('total')}",
            f"  line {values('ready')}",
            "```",
        ]
    )
