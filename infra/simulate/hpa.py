"""The Kubernetes HorizontalPodAutoscaler algorithm (autoscaling/v2 with ``behavior``), replayed on a simulated clock.

It follows the controller (pkg/controller/podautoscaler/horizontal.go) rather than a paraphrase of it, because a
what-if answer is only useful if it matches what the cluster would do: the first sync seeds the stabilization window
with the current replica count, recommendations and scale events count only when strictly newer than their window,
percentages round the way the controller rounds, and metric values are compared in milli-units like Kubernetes
quantities. Time is whatever the caller passes in, so replays are deterministic.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from typing import Any, Literal

PolicyType = Literal["Pods", "Percent"]
SelectPolicy = Literal["Max", "Min", "Disabled"]


@dataclass(frozen=True)
class Policy:
    """At most ``value`` pods (or percent of the replicas at the start of the period) changed per ``period_s``."""

    type: PolicyType
    value: int
    period_s: int


@dataclass(frozen=True)
class Rules:
    """One direction of ``behavior``: a stabilization window and rate limits combined by ``select_policy``.

    No policies means no rate limit, which Kubernetes itself can't express (it requires at least one).
    """

    stabilization_s: int
    select_policy: SelectPolicy = "Max"
    policies: tuple[Policy, ...] = ()


DEFAULT_SCALE_UP = Rules(0, "Max", (Policy("Pods", 4, 15), Policy("Percent", 100, 15)))
DEFAULT_SCALE_DOWN = Rules(300, "Max", (Policy("Percent", 100, 15),))


@dataclass(frozen=True)
class HpaSpec:
    """An HPA on one per-pod ``AverageValue`` metric; ``tolerance`` and ``sync_s`` are the controller-manager's flags."""

    min_replicas: int
    max_replicas: int
    target: float
    scale_up: Rules = DEFAULT_SCALE_UP
    scale_down: Rules = DEFAULT_SCALE_DOWN
    tolerance: float = 0.1
    sync_s: int = 15

    def __post_init__(self) -> None:
        if not 0 <= self.min_replicas <= self.max_replicas or self.max_replicas < 1:
            raise ValueError(
                f"need 0 <= minReplicas <= maxReplicas and maxReplicas >= 1, got {self.min_replicas}..{self.max_replicas}"
            )
        if _milli(self.target) <= 0:
            raise ValueError(f"target must be at least 1m, got {self.target}")

    @classmethod
    def from_manifest(cls, spec: dict[str, Any], *, tolerance: float = 0.1, sync_s: int = 15) -> HpaSpec:
        """Read a rendered ``autoscaling/v2`` HPA ``spec``, defaulting what is absent as the API server and controller do."""
        metrics = spec.get("metrics") or []
        if not metrics:
            raise ValueError("HPA spec has no metrics")
        metric = metrics[0]
        kind = str(metric.get("type", ""))
        source = metric.get(kind[:1].lower() + kind[1:]) or {}
        target = (source.get("target") or {}).get("averageValue")
        if target is None:
            raise ValueError(f"metrics[0] ({kind or 'untyped'}) has no target.averageValue")
        behavior = spec.get("behavior") or {}
        return cls(
            min_replicas=int(spec.get("minReplicas", 1)),
            max_replicas=int(spec["maxReplicas"]),
            target=parse_quantity(target),
            scale_up=_rules(behavior.get("scaleUp"), DEFAULT_SCALE_UP),
            scale_down=_rules(behavior.get("scaleDown"), DEFAULT_SCALE_DOWN),
            tolerance=tolerance,
            sync_s=sync_s,
        )


def _rules(raw: dict[str, Any] | None, default: Rules) -> Rules:
    """Field-by-field defaulting, as ``SetDefaults_HorizontalPodAutoscalerBehavior`` does."""
    if not raw:
        return default
    policies = tuple(Policy(p["type"], int(p["value"]), int(p["periodSeconds"])) for p in raw.get("policies") or ())
    window = raw.get("stabilizationWindowSeconds")
    return Rules(
        stabilization_s=default.stabilization_s if window is None else int(window),
        select_policy=raw.get("selectPolicy") or default.select_policy,
        policies=policies or default.policies,
    )


_QUANTITY = re.compile(r"^([+-]?(?:\d+\.?\d*|\.\d+))(?:([eE][+-]?\d+)|(Ki|Mi|Gi|Ti|Pi|Ei|n|u|m|k|M|G|T|P|E)?)$")
_SUFFIX = {"n": 1e-9, "u": 1e-6, "m": 1e-3, "": 1.0, "k": 1e3, "M": 1e6, "G": 1e9, "T": 1e12, "P": 1e15, "E": 1e18}
_SUFFIX |= {f"{p}i": 1024.0**n for n, p in enumerate("KMGTPE", start=1)}


def parse_quantity(value: str | float) -> float:
    """A Kubernetes quantity ("5", "500m", "1.5k", "1Ki", "1e3") as a float; numbers pass through."""
    if isinstance(value, int | float):
        return float(value)
    match = _QUANTITY.match(value.strip())
    if not match:
        raise ValueError(f"not a Kubernetes quantity: {value!r}")
    number, exponent, suffix = match.groups()
    return float(number + exponent) if exponent else float(number) * _SUFFIX[suffix or ""]


def _milli(value: float) -> int:
    """Milli-units, rounded up like ``Quantity.MilliValue``, so ratios such as 300m/100m are exact."""
    return math.ceil(round(value * 1000, 6))


def desired_replicas(current: int, metric_avg: float, target: float, tolerance: float) -> int:
    """``ceil(current × metric/target)``, or ``current`` while the ratio is within ``tolerance`` of 1.

    With no pods there is nothing to average over, so ``metric_avg`` is taken as the total and the answer is
    ``ceil(metric/target)`` — what the controller computes for an AverageValue External metric at zero replicas.
    """
    usage, goal = _milli(metric_avg), _milli(target)
    if current <= 0:
        return max(0, math.ceil(usage / goal))
    ratio = usage / goal
    if abs(1.0 - ratio) <= tolerance:
        return current
    return math.ceil(ratio * current)


@dataclass(frozen=True)
class _Recommendation:
    time_s: float
    replicas: int


@dataclass
class HpaController:
    """One HPA's controller state; call :meth:`step` once per ``spec.sync_s`` with increasing ``now_s``."""

    spec: HpaSpec
    events: list[tuple[float, int, int]] = field(default_factory=list)
    _recommendations: list[_Recommendation] = field(default_factory=list, init=False, repr=False)

    def step(self, now_s: float, current: int, metric_avg: float | None) -> int:
        """The replica count the controller would set at ``now_s``; a scale event is recorded when it differs from ``current``.

        As in the controller: zero replicas with ``minReplicas`` > 0 means autoscaling is off (the answer stays 0);
        a count outside [min, max] is clamped without rate limits; a missing metric changes nothing and leaves no
        recommendation behind.
        """
        spec = self.spec
        if not self._recommendations:
            self._recommendations.append(_Recommendation(now_s, current))
        if current == 0 and spec.min_replicas != 0:
            return 0
        if current > spec.max_replicas or current < spec.min_replicas:
            desired = min(max(current, spec.min_replicas), spec.max_replicas)
        elif metric_avg is None:
            return current
        else:
            raw = desired_replicas(current, metric_avg, spec.target, spec.tolerance)
            desired = self._rate_limited(now_s, current, self._stabilized(now_s, current, raw))
        if desired != current:
            self.events.append((now_s, current, desired))
        return desired

    def _stabilized(self, now_s: float, current: int, raw: int) -> int:
        """Scale up no further than the lowest, and down no further than the highest, recommendation in each window."""
        up_cutoff = now_s - self.spec.scale_up.stabilization_s
        down_cutoff = now_s - self.spec.scale_down.stabilization_s
        up = min([raw, *(r.replicas for r in self._recommendations if r.time_s > up_cutoff)])
        down = max([raw, *(r.replicas for r in self._recommendations if r.time_s > down_cutoff)])
        keep = [r for r in self._recommendations if r.time_s >= min(up_cutoff, down_cutoff)]
        self._recommendations = [*keep, _Recommendation(now_s, raw)]
        return min(max(current, up), down)

    def _period_start(self, now_s: float, current: int, period_s: int) -> int:
        """Replicas at the start of the policy period: the current count with the period's scale events undone."""
        start = current
        for t, frm, to in reversed(self.events):
            if t <= now_s - period_s:
                break
            start -= to - frm
        return start

    def _rate_limited(self, now_s: float, current: int, desired: int) -> int:
        """Clamp to the direction's policy limit, never past ``current`` the wrong way, and to [min, max]."""
        spec = self.spec
        if desired > current:
            limit = self._policy_limit(spec.scale_up, now_s, current, up=True)
            return min(desired, spec.max_replicas, max(limit, current))
        if desired < current:
            limit = self._policy_limit(spec.scale_down, now_s, current, up=False)
            return max(desired, spec.min_replicas, min(limit, current))
        return desired

    def _policy_limit(self, rules: Rules, now_s: float, current: int, *, up: bool) -> int:
        """The furthest each policy lets the count go; ``Max`` picks the largest change, ``Min`` the smallest."""
        if rules.select_policy == "Disabled":
            return current
        if not rules.policies:
            return self.spec.max_replicas if up else self.spec.min_replicas
        limits = []
        for p in rules.policies:
            start = self._period_start(now_s, current, p.period_s)
            if p.type == "Pods":
                limits.append(start + p.value if up else start - p.value)
            else:  # the controller rounds a scale-up proposal up and truncates a scale-down one
                limits.append(math.ceil(start * (1 + p.value / 100)) if up else int(start * (1 - p.value / 100)))
        return (max if (rules.select_policy == "Max") == up else min)(limits)
