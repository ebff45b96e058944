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
    """Two Mermaid xycharts on one time axis: traffic and queue, then replicas (in total and ready)."""
    series = r.series
    stride = max(1, len(series) // CHART_POINTS)
    points = series[::stride]
    hours = ", ".join(f"{p.t_s / 3600:.1f}" for p in points)

    def values(key: str) -> str:
        return "[" + ", ".join(str(getattr(p, key)) for p in points) + "]"

    def block(subtitle: str, lines: list[str], top: int) -> list[str]:
        return [
            "```mermaid",
            "xychart-beta",
            f'  title "{title}: {subtitle}"',
            f'  x-axis "hour" [{hours}]',
            f"  y-axis 0 --> {max(1, top)}",
            *lines,
            "```",
        ]

    traffic = block(
        "arrivals per minute (bars), queued requests (line)",
        [f"  bar {values('arrivals')}", f"  line {values('queue')}"],
        max([*(p.arrivals for p in points), *(p.queue for p in points)], default=1),
    )
    replicas = block(
        "replicas in total (bars), ready (line)",
        [f"  bar {values('total')}", f"  line {values('ready')}"],
        max((p.total for p in points), default=1),
    )
    return "\n".join([*traffic, "", *replicas])
