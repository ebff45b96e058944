"""Cloud Monitoring as code: a dashboard from typed chart builders and alert policies from typed conditions.

The dashboard is the Monitoring API's `Dashboard` JSON (camelCase, `mosaicLayout`), built from the dataclasses below
rather than pasted; alert policies use pulumi-gcp's own argument types. Every query is a time-series filter naming one
metric type, so what a chart or an alert reads is visible in the plan and checkable against what is scraped.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Literal

import pulumi
import pulumi_gcp as gcp

COLUMNS = 48
"""The mosaic layout's grid width; two charts per row."""
CHART_HEIGHT = 16

Aligner = Literal["ALIGN_MEAN", "ALIGN_RATE", "ALIGN_DELTA", "ALIGN_MAX", "ALIGN_NEXT_OLDER"]
Reducer = Literal["REDUCE_SUM", "REDUCE_MEAN", "REDUCE_MAX", "REDUCE_PERCENTILE_95", "REDUCE_PERCENTILE_50"]


@dataclass(frozen=True)
class Match:
    """One term of a filter: `<scope>.label.<key>` equal to a value, or matching a regular expression."""

    scope: Literal["metric", "resource"]
    key: str
    value: str | int
    regex: bool = False

    def term(self) -> str:
        if self.regex:
            return f'{self.scope}.label."{self.key}"=monitoring.regex.full_match("{self.value}")'
        value = self.value if isinstance(self.value, int) else f'"{self.value}"'
        return f'{self.scope}.label."{self.key}"={value}'


@dataclass(frozen=True)
class Series:
    """A metric type, the monitored resource it is written on, the label terms selecting it and how it is aggregated."""

    metric_type: str
    resource_type: str
    matches: tuple[Match, ...] = ()
    aligner: Aligner = "ALIGN_MEAN"
    reducer: Reducer | None = None
    group_by: tuple[str, ...] = ()
    period_s: int = 60

    @property
    def filter(self) -> str:
        terms = [f'metric.type="{self.metric_type}"', f'resource.type="{self.resource_type}"']
        return " ".join(terms + [m.term() for m in self.matches])

    def alert_aggregation(self) -> dict[str, Any]:
        """The same aggregation as pulumi-gcp's (snake_case) aggregation arguments."""
        return {
            "alignment_period": f"{self.period_s}s",
            "per_series_aligner": self.aligner,
            "cross_series_reducer": self.reducer,
            "group_by_fields": list(self.group_by) if self.reducer else None,
        }

    def aggregation(self) -> dict[str, Any]:
        out: dict[str, Any] = {"alignmentPeriod": f"{self.period_s}s", "perSeriesAligner": self.aligner}
        if self.reducer:
            out |= {"crossSeriesReducer": self.reducer, "groupByFields": list(self.group_by)}
        return out


@dataclass(frozen=True)
class Chart:
    title: str
    series: tuple[Series, ...]
    unit: str
    threshold: float | None = None
    """Drawn as a line: the value an alert fires at."""

    def widget(self) -> dict[str, Any]:
        chart: dict[str, Any] = {
            "dataSets": [
                {
                    "timeSeriesQuery": {"timeSeriesFilter": {"filter": s.filter, "aggregation": s.aggregation()}},
                    "plotType": "LINE",
                    "targetAxis": "Y1",
                }
                for s in self.series
            ],
            "yAxis": {"label": self.unit, "scale": "LINEAR"},
        }
        if self.threshold is not None:
            chart["thresholds"] = [{"value": self.threshold, "targetAxis": "Y1"}]
        return {"title": self.title, "xyChart": chart}


@dataclass(frozen=True)
class Section:
    """A titled group of charts: one workload, the gateway, the pools."""

    title: str
    charts: tuple[Chart, ...]


def dashboard_json(display_name: str, sections: tuple[Section, ...]) -> dict[str, Any]:
    """Each section a full-width header, then its charts two per row."""
    tiles: list[dict[str, Any]] = []
    y = 0
    width = COLUMNS // 2
    for section in sections:
        tiles.append(
            {"xPos": 0, "yPos": y, "width": COLUMNS, "height": 2, "widget": {"title": section.title, "sectionHeader": {}}}
        )
        y += 2
        for i, chart in enumerate(section.charts):
            tiles.append(
                {
                    "xPos": (i % 2) * width,
                    "yPos": y + (i // 2) * CHART_HEIGHT,
                    "width": width,
                    "height": CHART_HEIGHT,
                    "widget": chart.widget(),
                }
            )
        y += -(-len(section.charts) // 2) * CHART_HEIGHT
    return {"displayName": display_name, "mosaicLayout": {"columns": COLUMNS, "tiles": tiles}}


@dataclass(frozen=True)
class Condition:
    """The series stays beyond `value` for `duration_s` (a whole number of minutes: the API's rule); with a
    denominator, their ratio does."""

    title: str
    series: Series
    value: float
    duration_s: int
    comparison: Literal["COMPARISON_GT", "COMPARISON_GE"] = "COMPARISON_GT"
    denominator: Series | None = None

    def __post_init__(self) -> None:
        if self.duration_s % 60:
            raise ValueError(f"{self.title}: duration {self.duration_s}s is not a whole number of minutes")

    def args(self) -> gcp.monitoring.AlertPolicyConditionArgs:
        s, den = self.series, self.denominator
        return gcp.monitoring.AlertPolicyConditionArgs(
            display_name=self.title,
            condition_threshold=gcp.monitoring.AlertPolicyConditionConditionThresholdArgs(
                filter=s.filter,
                aggregations=[gcp.monitoring.AlertPolicyConditionConditionThresholdAggregationArgs(**s.alert_aggregation())],
                denominator_filter=den.filter if den else None,
                denominator_aggregations=(
                    [gcp.monitoring.AlertPolicyConditionConditionThresholdDenominatorAggregationArgs(**den.alert_aggregation())]
                    if den
                    else None
                ),
                comparison=self.comparison,
                threshold_value=self.value,
                duration=f"{self.duration_s}s",
                trigger=gcp.monitoring.AlertPolicyConditionConditionThresholdTriggerArgs(count=1),
            ),
        )


@dataclass(frozen=True)
class Alert:
    name: str
    """The resource name's suffix and the policy's display name."""
    conditions: tuple[Condition, ...]
    runbook: str
    """What to do when it fires: the policy's documentation, shown in the notification."""
    severity: Literal["CRITICAL", "ERROR", "WARNING"]
    combiner: Literal["OR", "AND"] = "OR"


@dataclass(frozen=True)
class MonitoringArgs:
    project: str
    prefix: str
    """Prefixes every display name: two stacks in one project never show two alerts of one name."""
    sections: tuple[Section, ...]
    alerts: tuple[Alert, ...]
    notification_channels: tuple[str, ...]
    """Existing channels' resource names (projects/P/notificationChannels/ID); none: alerts only show in the console."""
    labels: dict[str, str]


class Monitoring(pulumi.ComponentResource):
    """The environment's dashboard and its alert policies."""

    def __init__(self, name: str, args: MonitoringArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("gke-inference:monitoring:Monitoring", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        gcp.monitoring.Dashboard(
            f"{name}-dashboard",
            project=args.project,
            dashboard_json=json.dumps(dashboard_json(f"{args.prefix} inference", args.sections), sort_keys=True),
            opts=child,
        )
        for alert in args.alerts:
            gcp.monitoring.AlertPolicy(
                f"{name}-{alert.name}",
                project=args.project,
                display_name=f"{args.prefix} {alert.name}",
                combiner=alert.combiner,
                conditions=[c.args() for c in alert.conditions],
                documentation=gcp.monitoring.AlertPolicyDocumentationArgs(content=alert.runbook, mime_type="text/markdown"),
                notification_channels=list(args.notification_channels),
                severity=alert.severity,
                user_labels=args.labels,
                opts=child,
            )
        self.register_outputs({})
